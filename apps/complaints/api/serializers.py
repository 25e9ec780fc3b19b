"""Serializers of the consumer case API and the FAQ. Internal notes, staff names, hotline callers'
data and SLA internals are never part of them."""

from __future__ import annotations

from datetime import datetime

from rest_framework import serializers

from ..choices import CaseKind, CaseStatus
from ..models import Case, CaseAttachment, CaseCategory, CaseMessage, FaqArticle

KIND_HELP = "One of: " + ", ".join(CaseKind.values)
STATUS_HELP = "One of: " + ", ".join(CaseStatus.values)


class CategorySerializer(serializers.ModelSerializer):
    kind = serializers.CharField(read_only=True, help_text=KIND_HELP)

    class Meta:
        model = CaseCategory
        fields = ["code", "name", "kind"]


class CaseCreateSerializer(serializers.Serializer):
    kind = serializers.CharField(max_length=20, help_text=KIND_HELP)
    category = serializers.SlugField(
        max_length=40, required=False, help_text="A category code; default: the kind's first."
    )
    subject = serializers.CharField(max_length=200)
    description = serializers.CharField(max_length=10_000, required=False, allow_blank=True)
    invoice = serializers.UUIDField(required=False, help_text="One of my invoices (uid).")
    award = serializers.UUIDField(required=False, help_text="One of my prizes (id).")
    merchant_name = serializers.CharField(
        max_length=200,
        required=False,
        allow_blank=True,
        help_text="For a refusal to issue an invoice: the merchant's name and address.",
    )

    def validate_kind(self, value):
        if value not in CaseKind.values:
            raise serializers.ValidationError("unknown kind", code="case.kind_invalid")
        return value


class MessageSerializer(serializers.ModelSerializer):
    kind = serializers.CharField(read_only=True, help_text="public_reply or consumer_message")
    from_me = serializers.SerializerMethodField()
    article = serializers.SerializerMethodField()

    class Meta:
        model = CaseMessage
        fields = ["id", "kind", "from_me", "body", "article", "created_at"]

    def get_from_me(self, obj) -> bool:
        return obj.kind == "consumer_message"

    def get_article(self, obj) -> dict | None:
        if obj.article_id is None or not obj.article.is_published:
            return None
        return {"slug": obj.article.slug, "title": obj.article.title}


class MessageCreateSerializer(serializers.Serializer):
    body = serializers.CharField(max_length=10_000)


class AttachmentSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="uid", read_only=True)
    name = serializers.CharField(source="original_name", read_only=True)

    class Meta:
        model = CaseAttachment
        fields = ["id", "name", "content_type", "size", "created_at"]


class AttachmentUploadSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="JPEG, PNG or PDF (checked from the content).")


class RatingSerializer(serializers.Serializer):
    score = serializers.IntegerField(min_value=1, max_value=5)
    comment = serializers.CharField(max_length=500, required=False, allow_blank=True)


class ReopenSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=300, required=False, allow_blank=True)


class CaseSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="public_id", read_only=True)
    kind = serializers.CharField(read_only=True, help_text=KIND_HELP)
    status = serializers.CharField(read_only=True, help_text=STATUS_HELP)
    category = CategorySerializer(read_only=True)

    class Meta:
        model = Case
        fields = [
            "id",
            "reference",
            "kind",
            "category",
            "subject",
            "status",
            "opened_at",
            "resolved_at",
            "rating",
        ]


class CaseDetailSerializer(CaseSerializer):
    invoice = serializers.SerializerMethodField()
    award = serializers.SerializerMethodField()
    merchant_name = serializers.CharField(source="reported_merchant_name", read_only=True)
    outcome = serializers.CharField(read_only=True)
    messages = serializers.SerializerMethodField()
    attachments = serializers.SerializerMethodField()
    reopen_until = serializers.SerializerMethodField()
    can_rate = serializers.SerializerMethodField()

    class Meta(CaseSerializer.Meta):
        fields = [
            *CaseSerializer.Meta.fields,
            "description",
            "invoice",
            "award",
            "merchant_name",
            "outcome",
            "resolution_summary",
            "rating_comment",
            "closed_at",
            "reopen_until",
            "can_rate",
            "messages",
            "attachments",
        ]

    def get_invoice(self, obj) -> str | None:
        return str(obj.invoice.uid) if obj.invoice_id else None

    def get_award(self, obj) -> str | None:
        return str(obj.award.public_id) if obj.award_id else None

    def get_messages(self, obj) -> list[dict]:
        return MessageSerializer(self.context["messages"], many=True).data

    def get_attachments(self, obj) -> list[dict]:
        return AttachmentSerializer(self.context["attachments"], many=True).data

    def get_reopen_until(self, obj) -> datetime | None:
        return self.context.get("reopen_until")

    def get_can_rate(self, obj) -> bool:
        return obj.status in (CaseStatus.RESOLVED, CaseStatus.CLOSED) and obj.rating is None


class FaqSerializer(serializers.ModelSerializer):
    category = serializers.SlugRelatedField(slug_field="code", read_only=True)

    class Meta:
        model = FaqArticle
        fields = ["slug", "title", "body", "category", "published_at", "updated_at"]


class FaqListSerializer(FaqSerializer):
    class Meta(FaqSerializer.Meta):
        fields = ["slug", "title", "category", "updated_at"]
