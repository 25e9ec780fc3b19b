"""Import and export of complaint categories (CSV, XLSX). Rows are written by `category_upsert`.

Columns: code, name, kind, queue (queue code), default_priority (1 low … 4 urgent),
first_response_hours (working hours), resolution_days (working days), sort_order, active (1/0).
Chinese headers are accepted too (代码, 名称, 类型, 队列, 优先级, 首次响应时限, 办结时限, 排序,
启用).
"""

from __future__ import annotations

from functools import cache

from django.conf import settings
from django.utils import translation
from django.utils.translation import gettext_lazy as _
from import_export import resources
from import_export.fields import Field

from apps.common.import_export import (
    MaskedResourceMixin,
    ServiceImportResourceMixin,
    TextWidget,
    cell_text,
)

from .choices import CaseKind
from .models import CaseCategory
from .services import category_upsert, category_upsert_preview

IMPORT_COLUMNS = (
    "code",
    "name",
    "kind",
    "queue",
    "default_priority",
    "first_response_hours",
    "resolution_days",
    "sort_order",
    "active",
)


@cache
def kind_words() -> dict[str, str]:
    """Every way a file may spell a kind (value, or its label in any UI language)."""
    words = {}
    for language, _name in settings.LANGUAGES:
        with translation.override(language):
            for value, label in CaseKind.choices:
                words[str(label).casefold()] = value
    for value in CaseKind.values:
        words[value] = value
    words.update(
        {
            "咨询": "consultation",
            "投诉": "complaint",
            "拒开发票": "merchant_refusal",
            "申诉": "appeal",
            "奖金问题": "prize_problem",
        }
    )
    return words


def _or(value, default):
    return default if value == "" or value is None else value


def _text(name: str, *, attribute: str | None = None, readonly: bool = False) -> Field:
    return Field(
        attribute=attribute or name, column_name=name, widget=TextWidget(), readonly=readonly
    )


class CaseCategoryResource(
    ServiceImportResourceMixin, MaskedResourceMixin, resources.ModelResource
):
    """Complaint categories by code: create or update name, kind, queue, priority and SLA."""

    code = _text("code")
    name = _text("name")
    kind = _text("kind")
    queue = _text("queue", attribute="queue__code")
    default_priority = _text("default_priority")
    first_response_hours = _text("first_response_hours")
    resolution_days = _text("resolution_days")
    sort_order = _text("sort_order")
    active = _text("active")

    column_aliases = {
        "代码": "code",
        "分类代码": "code",
        "名称": "name",
        "分类名称": "name",
        "类型": "kind",
        "队列": "queue",
        "队列代码": "queue",
        "优先级": "default_priority",
        "首次响应时限": "first_response_hours",
        "首次响应（工作小时）": "first_response_hours",
        "办结时限": "resolution_days",
        "办结（工作日）": "resolution_days",
        "排序": "sort_order",
        "启用": "active",
    }
    import_audit_action = "case_category.imported"
    export_file_stem = "case-categories"
    export_select_related = ("queue",)

    class Meta:
        model = CaseCategory
        name = _("Case categories")
        fields = IMPORT_COLUMNS
        import_id_fields = ("code",)
        use_transactions = False
        clean_model_instances = False
        skip_unchanged = False
        report_skipped = True

    def dehydrate_active(self, obj):
        return "1" if obj.active else "0"

    def before_import_row(self, row, **kwargs):
        if "kind" in row:
            kind = cell_text(row["kind"]).strip()
            row["kind"] = kind_words().get(kind.casefold(), kind)
        super().before_import_row(row, **kwargs)

    def import_service(self, instance, row, *, dry_run, actor, source):
        current = self.current_instance
        values = {
            "code": cell_text(row.get("code")).strip(),
            "name": self.row_value(row, "name"),
            "kind": self.row_value(row, "kind"),
            "queue_code": cell_text(row.get("queue")).strip()
            or (current.queue.code if current is not None else ""),
            # Empty cells of a new category take the model's defaults.
            "default_priority": _or(self.row_value(row, "default_priority"), 2),
            "first_response_hours": _or(self.row_value(row, "first_response_hours"), "4"),
            "resolution_days": _or(self.row_value(row, "resolution_days"), "5"),
            "sort_order": _or(self.row_value(row, "sort_order"), 100),
            "active": cell_text(row.get("active")).strip()
            if cell_text(row.get("active")).strip()
            else (current.active if current is not None else True),
        }
        if dry_run:
            result = category_upsert_preview(**values)
        else:
            result = category_upsert(**values, actor=actor, source=source)
        category = result.category
        for field in (
            "code",
            "name",
            "kind",
            "default_priority",
            "first_response_hours",
            "resolution_days",
            "sort_order",
            "active",
        ):
            setattr(instance, field, getattr(category, field))
        if category.queue_id:
            instance.queue = category.queue
        instance.pk = category.pk
        return result.outcome
