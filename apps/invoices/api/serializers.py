"""Consumer API serializers: explicit fields only, so nothing can be mass-assigned."""

from __future__ import annotations

from rest_framework import serializers

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


class InvoiceDetailSerializer(InvoiceSerializer):
    history = InvoiceStepSerializer(many=True, read_only=True)

    class Meta(InvoiceSerializer.Meta):
        fields = [*InvoiceSerializer.Meta.fields, "history"]
        read_only_fields = fields


class SubmissionSerializer(serializers.Serializer):
    invoice = InvoiceSerializer()
    instant_prize = serializers.JSONField(allow_null=True)
