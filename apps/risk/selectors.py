"""Reads of risk control: the review queue, the evidence of one case, a merchant's profile."""

from __future__ import annotations

from datetime import timedelta

from django.db.models import Count, Q
from django.db.models.functions import TruncDate
from django.utils import timezone

from apps.invoices.choices import InvoiceStatus
from apps.invoices.models import Invoice

from .choices import AlertStatus, ListKind
from .models import MerchantBaseline, RiskAlert, RiskAssessment, WatchEntry


def may_use_desk(user) -> bool:
    return (
        user.is_active
        and user.is_staff
        and (user.has_perm("risk.view_riskalert") or user.has_perm("invoices.review_invoice"))
    )


def held_invoice_list():
    """Held invoices, oldest first, with their score (one query with the join)."""
    return (
        Invoice.objects.filter(status=InvoiceStatus.HELD)
        .select_related("merchant", "risk_assessment")
        .order_by("submitted_at", "pk")
    )


def open_alert_list(*, kind: str = ""):
    alerts = RiskAlert.objects.filter(status=AlertStatus.OPEN).select_related(
        "merchant", "campaign"
    )
    if kind:
        alerts = alerts.filter(subject_kind=kind)
    return alerts.order_by("-score", "-pk")


def invoice_evidence(invoice: Invoice) -> dict:
    """What a reviewer needs to decide on a held invoice."""
    assessment = RiskAssessment.objects.filter(invoice=invoice).first()
    since = invoice.submitted_at - timedelta(days=7)
    recent = (
        Invoice.objects.filter(consumer_id=invoice.consumer_id, submitted_at__gte=since)
        .exclude(pk=invoice.pk)
        .select_related("merchant")
        .order_by("-submitted_at")[:20]
    )
    device_consumers = 0
    if invoice.device_hash:
        device_consumers = (
            Invoice.objects.filter(device_hash=invoice.device_hash)
            .values("consumer_id")
            .distinct()
            .count()
        )
    watch = WatchEntry.objects.filter(
        active=True,
        value__in=[
            v
            for v in (str(invoice.consumer.public_id), invoice.seller_uscc, invoice.device_hash)
            if v
        ],
    )
    alerts = RiskAlert.objects.filter(
        Q(consumer_id=invoice.consumer_id) | Q(merchant_id=invoice.merchant_id),
        status=AlertStatus.OPEN,
    )[:10]
    return {
        "assessment": assessment,
        "recent": list(recent),
        "device_consumers": device_consumers,
        "watch": list(watch),
        "alerts": list(alerts),
    }


def merchant_profile(merchant, *, days: int = 30) -> dict:
    """A seller's risk profile: the nightly baseline and score, daily volume, alerts, lists."""
    since = timezone.now() - timedelta(days=days)
    entries = Invoice.objects.filter(merchant=merchant, submitted_at__gte=since)
    daily = list(
        entries.annotate(day=TruncDate("submitted_at"))
        .values("day")
        .annotate(
            n=Count("pk"),
            held=Count("pk", filter=Q(status=InvoiceStatus.HELD)),
            reversed=Count("pk", filter=Q(status=InvoiceStatus.REVERSED)),
            buyers=Count("consumer_id", distinct=True),
        )
        .order_by("day")
    )
    peak = max((row["n"] for row in daily), default=0)
    for row in daily:
        row["bar"] = round(100 * row["n"] / peak) if peak else 0
    return {
        "baseline": MerchantBaseline.objects.filter(merchant=merchant).first(),
        "daily": daily,
        "totals": entries.aggregate(
            n=Count("pk"),
            buyers=Count("consumer_id", distinct=True),
            held=Count("pk", filter=Q(status=InvoiceStatus.HELD)),
            blocked=Count("pk", filter=Q(rejection_code="risk.blocked")),
        ),
        "alerts": list(RiskAlert.objects.filter(merchant=merchant).order_by("-created_at")[:20]),
        "watch": list(
            WatchEntry.objects.filter(
                Q(kind=ListKind.MERCHANT, value=merchant.uscc) | Q(merchant_uscc=merchant.uscc)
            ).order_by("-created_at")[:20]
        ),
        "held": list(
            Invoice.objects.filter(merchant=merchant, status=InvoiceStatus.HELD).order_by(
                "submitted_at"
            )[:20]
        ),
    }
