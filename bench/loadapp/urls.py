from django.urls import include, path

from .views import ConstantView, InsertView

urlpatterns = [
    path("bench/constant/", ConstantView.as_view()),
    path("bench/insert/", InsertView.as_view()),
    path("", include("lotteryinvoice.urls")),
]
