"""Top-level URLs: the admin (at a configurable path), the API, its schema and docs."""

from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from django.utils.translation import gettext_lazy as _
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView

from apps.common.views import healthz

admin.site.site_header = _("Prize-invoice campaign back office")
admin.site.site_title = _("Prize-invoice back office")
admin.site.index_title = _("Campaign operations")

urlpatterns = [
    path(settings.ADMIN_URL, admin.site.urls),
    path("api/v1/", include("lotteryinvoice.api_urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularRedocView.as_view(url_name="api-schema"), name="api-docs"),
    path("healthz", healthz, name="healthz"),
]
