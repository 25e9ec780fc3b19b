from __future__ import annotations

from django.urls import reverse
from rest_framework import serializers

from ..models import Article, ArticleImage
from ..sanitize import sanitize_html
from ..selectors import winner_display_name


class ImageSerializer(serializers.ModelSerializer):
    url = serializers.CharField(source="path")
    alt = serializers.CharField(source="alt_text")

    class Meta:
        model = ArticleImage
        fields = ["url", "alt", "width", "height", "content_type"]


class ArticleListSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="public_id")
    kind_label = serializers.CharField(source="get_kind_display")
    page_url = serializers.SerializerMethodField()

    class Meta:
        model = Article
        fields = [
            "id",
            "kind",
            "kind_label",
            "title",
            "summary",
            "published_at",
            "updated_at",
            "page_url",
        ]

    def get_page_url(self, obj) -> str:
        return reverse("content:article", kwargs={"public_id": obj.public_id})


class ArticleSerializer(ArticleListSerializer):
    body = serializers.SerializerMethodField(help_text="Sanitised HTML (allow-list).")
    winner_name = serializers.SerializerMethodField()
    images = ImageSerializer(many=True)

    class Meta(ArticleListSerializer.Meta):
        fields = [*ArticleListSerializer.Meta.fields, "body", "winner_name", "images"]

    def get_body(self, obj) -> str:
        return sanitize_html(obj.body)

    def get_winner_name(self, obj) -> str:
        """Masked unless the winner consented to the full name; empty for other kinds."""
        return winner_display_name(obj)


class MerchantLookupQuerySerializer(serializers.Serializer):
    q = serializers.CharField(required=False, allow_blank=True, max_length=50)
    area = serializers.CharField(required=False, allow_blank=True, max_length=6)
    industry = serializers.CharField(required=False, allow_blank=True, max_length=2)


class MerchantResultSerializer(serializers.Serializer):
    name = serializers.CharField(source="merchant.name")
    uscc = serializers.CharField(source="merchant.uscc")
    address = serializers.CharField(source="merchant.address")
    area_code = serializers.CharField(source="merchant.area_code")
    area_name = serializers.CharField()
    industry_code = serializers.CharField(source="merchant.industry_code")
    industry_name = serializers.CharField()
    qualifies = serializers.BooleanField()
    reason = serializers.CharField()
