"""Consumer API serializers: explicit fields only, so nothing can be mass-assigned."""

from __future__ import annotations

from decimal import Decimal

from django.utils import timezone
from rest_framework import serializers

from apps.invoices.choices import InvoiceStatus, InvoiceType, SourceChannel
from apps.invoices.exceptions import rejection_message
from apps.invoices.models import Invoice, InvoiceStatusChange


class InvoiceSubmitSerializer(serializers.Serializer):
    """Either the raw QR payload, or number + issue date + total. Other keys are ignored."""

    qr = serializers.CharField(required=False, allow_blank=True, max_length=512)
    number = serializers.CharField(required=False, allow_blank=True, max_length=40)
    issue_date = serializers.CharField(required=False, allow_blank=True, max_length=20)
    total = serializers.CharField(required=False, allow_blank=True, max_length=20)
    # The app's installation/device ID (or the `X-Device-Id` header); stored only hashed.
    device_id = serializers.CharField(required=False, allow_blank=True, max_length=128)


class InvoiceStepSerializer(serializers.ModelSerializer):
    class Meta:
        model = InvoiceStatusChange
        fields = ["from_status", "to_status", "code", "at"]


class InvoiceSerializer(serializers.ModelSerializer):
    campaign = serializers.SlugRelatedField(slug_field="code", read_only=True)
    rejection_message = serializers.SerializerMethodField()

    class Meta:
        model = Invoice
        fields = [
            "uid",
            "number",
            "invoice_type",
            "issue_date",
            "total",
            "seller_name",
            "status",
            "rejection_code",
            "rejection_message",
            "campaign",
            "source_channel",
            "submitted_at",
            "decided_at",
            "entered_at",
        ]
        read_only_fields = fields

    def get_rejection_message(self, obj) -> str:
        return rejection_message(obj.rejection_code)


_CENT = Decimal("0.01")
_CHOICES = {
    "invoice_type": frozenset(InvoiceType.values),
    "status": frozenset(InvoiceStatus.values),
    "source_channel": frozenset(SourceChannel.values),
}


def _choice(name: str, value):
    # DRF's ChoiceField: the choice's own value for a known one, anything else unchanged.
    if value in ("", None):
        return value
    text = str(value)
    return text if text in _CHOICES[name] else value


def _datetime(value):
    # DRF's DateTimeField (ISO 8601, in the current time zone, "Z" for UTC).
    if not value:
        return None
    text = value.astimezone(timezone.get_current_timezone()).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def _decimal(value) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(str(value).strip())


def invoice_payload(invoice) -> dict:
    """`InvoiceSerializer(invoice).data` without building a ModelSerializer (its fields are
    introspected from the model on every instance): the submission's reply. The two are kept
    equal by tests/invoices/test_submission_querycount.py."""
    campaign = invoice.campaign
    issue_date, total = invoice.issue_date, invoice.total
    return {
        "uid": str(invoice.uid),
        "number": str(invoice.number),
        "invoice_type": _choice("invoice_type", invoice.invoice_type),
        "issue_date": (
            None
            if not issue_date
            else issue_date
            if isinstance(issue_date, str)
            else issue_date.isoformat()
        ),
        "total": "" if total is None else f"{_decimal(total).quantize(_CENT):f}",
        "seller_name": str(invoice.seller_name),
        "status": _choice("status", invoice.status),
        "rejection_code": str(invoice.rejection_code),
        "rejection_message": rejection_message(invoice.rejection_code),
        "campaign": None if campaign is None else campaign.code,
        "source_channel": _choice("source_channel", invoice.source_channel),
        "submitted_at": _datetime(invoice.submitted_at),
        "decided_at": _datetime(invoice.decided_at),
        "entered_at": _datetime(invoice.entered_at),
    }


class InvoiceDetailSerializer(InvoiceSerializer):
    history = InvoiceStepSerializer(many=True, read_only=True)

    class Meta(InvoiceSerializer.Meta):
        fields = [*InvoiceSerializer.Meta.fields, "history"]
        read_only_fields = fields


class SubmissionSerializer(serializers.Serializer):
    invoice = InvoiceSerializer()
    instant_prize = serializers.JSONField(allow_null=True)
