"""The staff case desk, mounted under the admin's path (`<ADMIN_URL>casework/`).

Every view goes through `admin.site.admin_view`: the admin's sign-in (with the staff second
factor enforced by the middleware), staff-only access, no caching and CSRF protection.
"""

from django.contrib import admin
from django.urls import path
from django.views.generic import RedirectView

from . import views

app_name = "complaints"


def _v(view):
    return admin.site.admin_view(view)


urlpatterns = [
    path("", _v(RedirectView.as_view(pattern_name="complaints:mine")), name="index"),
    path("mine/", _v(views.mine), name="mine"),
    path("queue/", _v(views.queue), name="queue"),
    path("at-risk/", _v(views.at_risk), name="at_risk"),
    path("availability/", _v(views.availability), name="availability"),
    path("new/", _v(views.case_new), name="case_new"),
    path("hotline-import/", _v(views.hotline_import_view), name="hotline_import"),
    path("case/<str:reference>/", _v(views.case_detail), name="case_detail"),
    path(
        "case/<str:reference>/<slug:action>/",
        _v(views.case_action),
        name="case_action",
    ),
    path("attachment/<uuid:uid>/", _v(views.attachment_download), name="attachment"),
]
