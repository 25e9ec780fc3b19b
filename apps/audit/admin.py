"""The audit trail in the admin: read-only, and only for the audit roles (三员分立)."""

from __future__ import annotations

import csv

from django.contrib import admin
from django.http import HttpResponse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from apps.common.exports import safe_cell

from .models import AuditCategory, AuditEvent
from .services import audit_record

EXPORT_COLUMNS = (
    "seq",
    "at",
    "category",
    "action",
    "outcome",
    "actor_username",
    "ip",
    "request_id",
    "target_type",
    "target_id",
    "target_repr",
    "reason",
    "chain",
)


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = (
        "seq",
        "at",
        "category",
        "action",
        "outcome",
        "actor_username",
        "ip",
        "target_repr",
    )
    list_filter = ("category", "outcome", "at")
    search_fields = ("=action", "=actor_username", "=target_id", "=request_id", "=ip")
    date_hierarchy = "at"
    show_full_result_count = False
    list_per_page = 100
    actions = ["export_csv"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    @admin.action(description=_("Export selected records as CSV"), permissions=["view"])
    def export_csv(self, request, queryset):
        rows = queryset.order_by("seq")
        audit_record(
            action="audit.exported",
            category=AuditCategory.EXPORT,
            actor=request.user,
            after={"rows": rows.count()},
        )
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        stamp = timezone.localtime().strftime("%Y%m%d-%H%M%S")
        response["Content-Disposition"] = f'attachment; filename="audit-{stamp}.csv"'
        response.write("\ufeff")  # Excel opens UTF-8 CSV correctly with a BOM
        writer = csv.writer(response)
        writer.writerow(EXPORT_COLUMNS)
        for event in rows.iterator(chunk_size=2000):
            writer.writerow([safe_cell(getattr(event, c)) for c in EXPORT_COLUMNS])
        return response
