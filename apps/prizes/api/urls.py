from django.urls import include, path
from rest_framework.routers import SimpleRouter

from . import views

router = SimpleRouter()
router.register("me/awards", views.AwardViewSet, basename="award")
router.register("me/coupons", views.CouponViewSet, basename="coupon")
router.register("me/payout-accounts", views.PayoutAccountViewSet, basename="payout-account")
router.register("me/payouts", views.PayoutViewSet, basename="payout")

urlpatterns = [
    path("merchant/coupons/check/", views.CouponCheckView.as_view(), name="merchant-coupon-check"),
    path(
        "merchant/coupons/redeem/", views.CouponRedeemView.as_view(), name="merchant-coupon-redeem"
    ),
    path(
        "merchant/redemptions/", views.RedemptionReportView.as_view(), name="merchant-redemptions"
    ),
    path("payments/callback/", views.payment_callback, name="payment-callback"),
    path("", include(router.urls)),
]
