from django.urls import path

from .views import MeView, VerificationView

urlpatterns = [
    path("", MeView.as_view(), name="me"),
    path("verification/", VerificationView.as_view(), name="me-verification"),
]
