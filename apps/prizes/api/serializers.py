"""Serializers of the consumer and merchant prize APIs. Account numbers are never returned
whole; a coupon's code only to its owner."""

from __future__ import annotations

from decimal import Decimal

from rest_framework import serializers

from ..choices import PayoutAccountKind
from ..models import Award, AwardStatusChange, Coupon, Payout, PayoutAccount


class AwardHistorySerializer(serializers.ModelSerializer):
    class Meta:
        model = AwardStatusChange
        fields = ["from_status", "to_status", "reason", "created_at"]


class CouponSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="public_id", read_only=True)
    code = serializers.SerializerMethodField()
    merchant = serializers.SerializerMethodField()

    class Meta:
        model = Coupon
        fields = [
            "id",
            "code",
            "face_value",
            "min_spend",
            "valid_industries",
            "merchant",
            "valid_from",
            "valid_until",
            "status",
            "redeemed_at",
        ]

    def get_code(self, obj) -> str:
        return str(obj.code)

    def get_merchant(self, obj) -> str | None:
        return obj.merchant.name if obj.merchant_id else None


class AwardSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="public_id", read_only=True)
    coupon = serializers.SerializerMethodField()

    class Meta:
        model = Award
        fields = [
            "id",
            "source",
            "kind",
            "name",
            "amount",
            "tax_withheld",
            "net_amount",
            "status",
            "status_reason",
            "payable_after",
            "claim_until",
            "claimed_at",
            "paid_at",
            "created_at",
            "coupon",
        ]

    def get_coupon(self, obj) -> dict | None:
        coupon = getattr(obj, "coupon", None) if obj.kind != "cash" else None
        return CouponSerializer(coupon).data if coupon is not None else None


class AwardDetailSerializer(AwardSerializer):
    history = AwardHistorySerializer(many=True, read_only=True)

    class Meta(AwardSerializer.Meta):
        fields = [*AwardSerializer.Meta.fields, "history"]


class PayoutAccountSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="public_id", read_only=True)
    account_no = serializers.SerializerMethodField()

    class Meta:
        model = PayoutAccount
        fields = ["id", "kind", "account_no", "bank_name", "status", "verified_at"]

    def get_account_no(self, obj) -> str:
        return f"****{obj.account_last4}"


class PayoutAccountCreateSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=PayoutAccountKind.choices)
    account_no = serializers.CharField(max_length=64, write_only=True)
    bank_name = serializers.CharField(max_length=100, required=False, default="")


class ClaimSerializer(serializers.Serializer):
    account = serializers.UUIDField(help_text="The id of one of your verified payout accounts.")


class PayoutSerializer(serializers.ModelSerializer):
    award = serializers.UUIDField(source="award.public_id", read_only=True)
    account = serializers.SerializerMethodField()

    class Meta:
        model = Payout
        fields = [
            "request_no",
            "award",
            "account",
            "amount",
            "tax_withheld",
            "status",
            "fail_code",
            "created_at",
            "finished_at",
        ]

    def get_account(self, obj) -> str:
        return f"****{obj.account.account_last4}"


class RedeemSerializer(serializers.Serializer):
    code = serializers.CharField(max_length=32)
    purchase_amount = serializers.DecimalField(
        max_digits=14, decimal_places=2, min_value=Decimal("0.01")
    )
    reference = serializers.CharField(
        max_length=64, help_text="Your till's transaction number: a retry with it is a no-op."
    )


class CheckSerializer(serializers.Serializer):
    code = serializers.CharField(max_length=32)


class MerchantCouponSerializer(serializers.ModelSerializer):
    """What a merchant may know about a coupon: value and conditions, not whose it is."""

    code_ends_with = serializers.CharField(source="code_last4")

    class Meta:
        model = Coupon
        fields = [
            "code_ends_with",
            "face_value",
            "min_spend",
            "valid_until",
            "status",
            "redeemed_at",
            "purchase_amount",
            "redemption_ref",
        ]


class RedemptionSerializer(serializers.Serializer):
    replayed = serializers.BooleanField()
    coupon = MerchantCouponSerializer()


class RedemptionReportSerializer(serializers.Serializer):
    count = serializers.IntegerField()
    value = serializers.DecimalField(max_digits=14, decimal_places=2)
    redemptions = MerchantCouponSerializer(many=True)
