"""What the consumer app may see about the signed-in consumer: masked, never the full values."""

from __future__ import annotations

from rest_framework import serializers

from apps.accounts.choices import ConsumerStatus, VerificationStatus
from apps.accounts.models import Consumer


class MeSerializer(serializers.ModelSerializer):
    masked_name = serializers.CharField(read_only=True, help_text="e.g. 张*")
    masked_phone = serializers.CharField(read_only=True, help_text="e.g. 138****5678")
    verification_status = serializers.ChoiceField(
        choices=VerificationStatus.choices, read_only=True
    )
    status = serializers.ChoiceField(choices=ConsumerStatus.choices, read_only=True)

    class Meta:
        model = Consumer
        fields = ["public_id", "masked_name", "masked_phone", "verification_status", "status"]
        read_only_fields = fields
