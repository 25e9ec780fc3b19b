"""Public publicity pages (no login). Mounted at `info/` in lotteryinvoice/urls.py."""

from django.urls import path

from . import views

app_name = "content"

urlpatterns = [
    path("", views.home, name="home"),
    path("articles/", views.article_list, name="article_list"),
    path("articles/<uuid:public_id>/", views.article_detail, name="article"),
    path("articles/kind/<str:kind>/", views.article_list, name="article_kind"),
    path("merchants/", views.merchant_lookup, name="merchant_lookup"),
    path("images/<uuid:public_id>.<str:ext>", views.image, name="image"),
]
