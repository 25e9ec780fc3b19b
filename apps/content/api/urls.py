from django.urls import path

from . import views

articles = views.ArticleViewSet.as_view({"get": "list"})
article = views.ArticleViewSet.as_view({"get": "retrieve"})

urlpatterns = [
    path("articles/", articles, name="article-list"),
    path("articles/kind/<str:kind>/", articles, name="article-kind"),
    path("articles/<uuid:public_id>/", article, name="article-detail"),
    path("merchants/lookup/", views.MerchantLookupView.as_view(), name="merchant-lookup"),
]
