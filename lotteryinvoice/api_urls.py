"""The versioned REST API (`/api/v1/`). Each app contributes its own `api/urls.py`."""

from django.urls import include, path

from apps.accounts.api.merchant_views import MerchantWhoAmIView
from apps.common.api import api_root

app_name = "api"

urlpatterns = [
    path("", api_root, name="root"),
    path("me/", include("apps.accounts.api.urls")),
    path("merchant/whoami/", MerchantWhoAmIView.as_view(), name="merchant-whoami"),
    path("", include("apps.invoices.api.urls")),
    path("", include("apps.prizes.api.urls")),
    path("", include("apps.complaints.api.urls")),
    path("partner/", include("apps.reporting.api.urls")),
    path("", include("apps.content.api.urls")),
]
