"""Reads of the prizes app, scoped to who is asking."""

from __future__ import annotations

from django.db.models import Count, QuerySet, Sum

from .choices import CouponStatus
from .models import Award, Coupon, Payout, PayoutAccount


def award_list_for_consumer(*, consumer) -> QuerySet[Award]:
    return (
        Award.objects.filter(consumer=consumer)
        .select_related("coupon")
        .order_by("-created_at", "-pk")
    )


def coupon_list_for_consumer(*, consumer) -> QuerySet[Coupon]:
    return (
        Coupon.objects.filter(award__consumer=consumer)
        .select_related("award", "merchant")
        .order_by("-created_at", "-pk")
    )


def payout_account_list_for_consumer(*, consumer) -> QuerySet[PayoutAccount]:
    return PayoutAccount.objects.filter(consumer=consumer).order_by("-created_at", "-pk")


def payout_list_for_consumer(*, consumer) -> QuerySet[Payout]:
    return (
        Payout.objects.filter(award__consumer=consumer)
        .select_related("award", "account")
        .order_by("-created_at", "-pk")
    )


def redemption_list_for_merchant(*, merchant, since=None, until=None) -> QuerySet[Coupon]:
    """A merchant's redemptions (its own only), newest first."""
    qs = Coupon.objects.filter(redeemed_by=merchant, status=CouponStatus.REDEEMED)
    if since is not None:
        qs = qs.filter(redeemed_at__gte=since)
    if until is not None:
        qs = qs.filter(redeemed_at__lt=until)
    return qs.order_by("-redeemed_at", "-pk")


def redemption_totals(queryset: QuerySet[Coupon]) -> dict:
    totals = queryset.aggregate(count=Count("pk"), value=Sum("face_value"))
    return {"count": totals["count"] or 0, "value": totals["value"] or 0}
