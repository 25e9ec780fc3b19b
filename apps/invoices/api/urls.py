from rest_framework.routers import SimpleRouter

from .views import EntryViewSet, InvoiceViewSet

router = SimpleRouter()
router.register("invoices", InvoiceViewSet, basename="invoice")
router.register("entries", EntryViewSet, basename="entry")

urlpatterns = router.urls
