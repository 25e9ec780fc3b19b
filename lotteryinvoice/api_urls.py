"""The versioned REST API (`/api/v1/`). Each app contributes its own `api/urls.py`."""

from django.urls import include, path

from apps.common.api import api_root

app_name = "api"

urlpatterns = [
    path("", api_root, name="root"),
    path("me/", include("apps.accounts.api.urls")),
    path("", include("apps.invoices.api.urls")),
]
