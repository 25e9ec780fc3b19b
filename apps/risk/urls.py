"""The risk desk, mounted under the admin's path (`<ADMIN_URL>riskdesk/`); every view goes
through `admin.site.admin_view` (sign-in with the second factor, staff only, CSRF)."""

from django.contrib import admin
from django.urls import path
from django.views.generic import RedirectView

from . import views

app_name = "risk"


def _v(view):
    return admin.site.admin_view(view)


urlpatterns = [
    path("", _v(RedirectView.as_view(pattern_name="risk:queue")), name="index"),
    path("held/", _v(views.queue), name="queue"),
    path("alerts/", _v(views.alerts), name="alerts"),
    path("config/", _v(views.config), name="config"),
    path("invoice/<int:pk>/", _v(views.invoice_detail), name="invoice"),
    path("invoice/<int:pk>/<slug:action>/", _v(views.invoice_action), name="invoice_action"),
    path("alert/<int:pk>/", _v(views.alert_detail), name="alert"),
    path("alert/<int:pk>/<slug:action>/", _v(views.alert_action), name="alert_action"),
    path("merchant/<int:pk>/", _v(views.merchant_profile), name="merchant"),
]
