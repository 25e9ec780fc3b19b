from rest_framework.routers import SimpleRouter

from . import views

router = SimpleRouter()
router.register("me/cases", views.CaseViewSet, basename="case")
router.register("case-categories", views.CategoryViewSet, basename="case-category")
router.register("faq", views.FaqViewSet, basename="faq")

urlpatterns = router.urls
