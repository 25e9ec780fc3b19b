"""Import and export of merchants (CSV, XLSX). Rows are written by `merchant_upsert`.

File format: docs/formats.md, "Merchant import and export".
"""

from __future__ import annotations

from functools import cache

from django.conf import settings
from django.core.exceptions import ValidationError
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

from .choices import MerchantStatus
from .models import Merchant
from .services import merchant_upsert, merchant_upsert_preview
from .validators import validate_uscc

#: Columns written by the import, in file order.
IMPORT_COLUMNS = (
    "uscc",
    "name",
    "area_code",
    "industry_code",
    "address",
    "status",
    "status_reason",
)


@cache
def status_words() -> dict[str, str]:
    """Every way a file may spell a status (value, or its label in any UI language,
    case-insensitive) → the status value."""
    words = {}
    for language, _name in settings.LANGUAGES:
        with translation.override(language):
            for value, label in MerchantStatus.choices:
                words[str(label).casefold()] = value
    for value in MerchantStatus.values:
        words[value] = value
    # Short forms officials write in spreadsheets.
    words.update(
        {
            "正常": MerchantStatus.ACTIVE,
            "暂停": MerchantStatus.SUSPENDED,
            "黑名单": MerchantStatus.BLACKLISTED,
        }
    )
    return {word: str(value) for word, value in words.items()}


def text_field(name: str, *, readonly: bool = False) -> Field:
    return Field(attribute=name, column_name=name, widget=TextWidget(), readonly=readonly)


class MerchantResource(ServiceImportResourceMixin, MaskedResourceMixin, resources.ModelResource):
    """Merchants by credit code: create or update registration data, and move the status
    (with a reason) through `merchant_set_status`. An empty cell keeps the current value."""

    uscc = text_field("uscc")
    name = text_field("name")
    area_code = text_field("area_code")
    industry_code = text_field("industry_code")
    address = text_field("address")
    status = text_field("status")
    status_reason = text_field("status_reason")
    status_changed_at = Field(
        attribute="status_changed_at", column_name="status_changed_at", readonly=True
    )
    updated_at = Field(attribute="updated_at", column_name="updated_at", readonly=True)

    column_aliases = {
        "统一社会信用代码": "uscc",
        "信用代码": "uscc",
        "名称": "name",
        "商户名称": "name",
        "区划代码": "area_code",
        "行政区划代码": "area_code",
        "行业代码": "industry_code",
        "地址": "address",
        "状态": "status",
        "状态原因": "status_reason",
        "原因": "status_reason",
    }
    import_audit_action = "merchant.imported"
    export_file_stem = "merchants"

    class Meta:
        model = Merchant
        name = _("Merchants")
        fields = (*IMPORT_COLUMNS, "status_changed_at", "updated_at")
        import_id_fields = ("uscc",)
        # One service transaction per row: good rows land whatever the others do.
        use_transactions = False
        clean_model_instances = False
        skip_unchanged = False
        report_skipped = True

    def before_import_row(self, row, **kwargs):
        # The look-up of the stored merchant uses the canonical code (upper case, half-width).
        raw = cell_text(row.get("uscc")).strip()
        try:
            row["uscc"] = validate_uscc(raw)
        except ValidationError:
            row["uscc"] = raw  # refused, with the validator's message, by the service
        if "status" in row:
            status = cell_text(row["status"]).strip()
            row["status"] = status_words().get(status.casefold(), status)
        super().before_import_row(row, **kwargs)

    def import_service(self, instance, row, *, dry_run, actor, source):
        values = {
            "uscc": row.get("uscc") or "",
            "name": self.row_value(row, "name"),
            "area_code": self.row_value(row, "area_code"),
            "industry_code": self.row_value(row, "industry_code"),
            "address": self.row_value(row, "address"),
            "status": cell_text(row.get("status")).strip() or None,
            "status_reason": cell_text(row.get("status_reason")).strip(),
        }
        if dry_run:
            result = merchant_upsert_preview(**values)
        else:
            result = merchant_upsert(**values, actor=actor, source=source)
        merchant = result.merchant
        for field in (*IMPORT_COLUMNS, "status_changed_at", "updated_at"):
            setattr(instance, field, getattr(merchant, field))
        instance.pk = merchant.pk
        return result.outcome
