"""The project's URLs with the public draw pages mounted at /draws/ (as in production), for
tests that run before (or after) lotteryinvoice/urls.py includes them."""

from django.urls import include, path

from lotteryinvoice.urls import urlpatterns as project_urlpatterns

urlpatterns = list(project_urlpatterns)
if not any(getattr(p, "namespace", None) == "draws" for p in urlpatterns):
    urlpatterns.append(path("draws/", include("apps.draws.urls")))
