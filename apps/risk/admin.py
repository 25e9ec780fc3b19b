"""Risk records in the admin: read-only lists (every change goes through the risk desk's
services, `apps.risk.views`, so it is audited and keeps the configuration cache fresh)."""

from __future__ import annotations

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from .models import (
    BatchRun,
    MerchantBaseline,
    Reverification,
    RiskAlert,
    RiskAssessment,
    RiskConfigChange,
    RiskRule,
    RiskSettings,
    WatchEntry,
)


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(RiskAlert)
class RiskAlertAdmin(ReadOnlyAdmin):
    list_display = ["id", "subject_kind", "desk_link", "score", "status", "created_at"]
    list_filter = ["status", "subject_kind", "campaign"]
    list_select_related = ["merchant"]
    show_full_result_count = False

    @admin.display(description=_("evidence"))
    def desk_link(self, obj):
        return format_html('<a href="{}">{}</a>', reverse("risk:alert", args=[obj.pk]), _("open"))


@admin.register(RiskAssessment)
class RiskAssessmentAdmin(ReadOnlyAdmin):
    list_display = ["invoice", "score", "action", "at"]
    list_filter = ["action"]
    raw_id_fields = ["invoice"]
    show_full_result_count = False


@admin.register(WatchEntry)
class WatchEntryAdmin(ReadOnlyAdmin):
    list_display = [
        "kind",
        "label",
        "merchant_uscc",
        "reason",
        "active",
        "created_by",
        "created_at",
    ]
    list_filter = ["kind", "active"]
    search_fields = ["value", "label", "merchant_uscc"]


@admin.register(RiskConfigChange)
class RiskConfigChangeAdmin(ReadOnlyAdmin):
    list_display = ["at", "target", "actor", "reason"]
    list_filter = ["target"]


@admin.register(RiskRule)
class RiskRuleAdmin(ReadOnlyAdmin):
    list_display = ["code", "enabled", "weight", "params", "updated_at"]


@admin.register(RiskSettings)
class RiskSettingsAdmin(ReadOnlyAdmin):
    list_display = ["hold_score", "block_score", "feature_z", "alert_z", "alert_min_features"]


@admin.register(BatchRun)
class BatchRunAdmin(ReadOnlyAdmin):
    list_display = ["campaign", "as_of", "invoices", "merchants", "consumers", "alerts", "seconds"]


@admin.register(MerchantBaseline)
class MerchantBaselineAdmin(ReadOnlyAdmin):
    list_display = ["merchant", "daily_mean", "score", "computed_at", "profile_link"]
    raw_id_fields = ["merchant"]
    show_full_result_count = False

    @admin.display(description=_("risk profile"))
    def profile_link(self, obj):
        return format_html(
            '<a href="{}">{}</a>', reverse("risk:merchant", args=[obj.merchant_id]), _("open")
        )


@admin.register(Reverification)
class ReverificationAdmin(ReadOnlyAdmin):
    list_display = ["invoice", "checked_at", "outcome"]
    raw_id_fields = ["invoice"]
    show_full_result_count = False
