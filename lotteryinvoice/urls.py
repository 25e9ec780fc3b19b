"""Top-level URLs: the admin (at a configurable path), sign-in (staff pages and the consumer
app's allauth headless API), the API, its schema and docs."""

from allauth.headless.constants import Client
from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from django.utils.translation import gettext_lazy as _
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView

from apps.accounts.api.headless import ConsumerConfirmLoginCodeView, ConsumerRequestLoginCodeView
from apps.accounts.auth_views import activate_totp, admin_login
from apps.common.views import healthz

admin.site.site_header = _("Prize-invoice campaign back office")
admin.site.site_title = _("Prize-invoice back office")
admin.site.index_title = _("Campaign operations")
# One login flow, with the second factor: the admin's own password-only form is never used.
admin.site.login = admin_login

urlpatterns = [
    # The staff case desk lives under the admin's path, before the admin's own catch-alls.
    path(f"{settings.ADMIN_URL}casework/", include("apps.complaints.urls")),
    # The risk desk (review queue, alerts, merchant profiles, rules), also under the admin.
    path(f"{settings.ADMIN_URL}riskdesk/", include("apps.risk.urls")),
    path(settings.ADMIN_URL, admin.site.urls),
    # Before allauth's own pattern of the same path and name: set-up also records the factor.
    path("accounts/2fa/totp/activate/", activate_totp, name="mfa_activate_totp"),
    path("accounts/", include("allauth.urls")),
    # The consumer app (allauth headless, app client). Before allauth's own patterns of the same
    # paths: a confirmed code for an unknown phone also creates the consumer.
    path(
        "_allauth/app/v1/auth/code/request",
        ConsumerRequestLoginCodeView.as_api_view(client=Client.APP),
    ),
    path(
        "_allauth/app/v1/auth/code/confirm",
        ConsumerConfirmLoginCodeView.as_api_view(client=Client.APP),
    ),
    path("_allauth/", include("allauth.headless.urls")),
    path("api/v1/", include("lotteryinvoice.api_urls")),
    path("draws/", include("apps.draws.urls")),
    path("info/", include("apps.content.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularRedocView.as_view(url_name="api-schema"), name="api-docs"),
    path("healthz", healthz, name="healthz"),
]
