"""django-import-export resources of the invoices app (docs/formats.md, "Admin import and
export").

- Campaign industry and area lists: import (through `campaign_lists.campaign_rule_upsert`) and
  export, columns named as in the file.
- Invoices and campaign entries: export only, columns headed with translated labels, personal
  data masked unless the user may reveal it.
"""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _
from import_export import resources
from import_export.fields import Field

from apps.common.import_export import (
    MaskedResourceMixin,
    NativeWidget,
    ServiceImportResourceMixin,
    TextWidget,
    cell_text,
    export_choice_column,
    export_column,
)
from apps.common.masking import mask_name, mask_phone
from apps.common.normalize import normalize_code

from .campaign_lists import (
    AREA,
    INDUSTRY,
    campaign_rule_upsert,
    campaign_rule_upsert_preview,
)
from .choices import InvoiceStatus
from .models import CampaignArea, CampaignIndustry, Invoice

# --- campaign lists --------------------------------------------------------------------------


class CampaignRuleResource(
    ServiceImportResourceMixin, MaskedResourceMixin, resources.ModelResource
):
    """One prefix rule per row, keyed by (campaign code, code). An empty cell keeps the current
    value; rules missing from the file stay (remove them on the campaign's page)."""

    kind = ""
    campaign = Field(attribute="campaign__code", column_name="campaign", widget=TextWidget())
    code = Field(attribute="code", column_name="code", widget=TextWidget())
    label = Field(attribute="label", column_name="label", widget=TextWidget())
    export_select_related = ("campaign",)

    def get_instance(self, instance_loader, row):
        campaign = normalize_code(cell_text(row.get("campaign")))
        code = normalize_code(cell_text(row.get("code")))
        if not campaign or not code:
            return None
        return (
            self._meta.model.objects.select_related("campaign")
            .filter(campaign__code=campaign, code=code)
            .first()
        )

    def service_values(self, row) -> dict:
        return {
            "kind": self.kind,
            "campaign": cell_text(row.get("campaign")),
            "code": cell_text(row.get("code")),
            "label": self.row_value(row, "label"),
        }

    def import_service(self, instance, row, *, dry_run, actor, source):
        values = self.service_values(row)
        if dry_run:
            result = campaign_rule_upsert_preview(**values)
        else:
            result = campaign_rule_upsert(**values, actor=actor, source=source)
        rule = result.rule
        instance.campaign = rule.campaign
        for name in ("code", "label", "excluded"):
            if hasattr(rule, name):
                setattr(instance, name, getattr(rule, name))
        instance.pk = rule.pk
        return result.outcome


class CampaignIndustryResource(CampaignRuleResource):
    kind = INDUSTRY
    excluded = Field(attribute="excluded", column_name="excluded", widget=NativeWidget())
    column_aliases = {
        "活动": "campaign",
        "活动代码": "campaign",
        "行业代码": "code",
        "代码": "code",
        "排除": "excluded",
        "是否排除": "excluded",
        "名称": "label",
        "标签": "label",
        "说明": "label",
    }
    import_audit_action = "campaign.industry_list_imported"
    export_file_stem = "campaign-industries"

    class Meta:
        model = CampaignIndustry
        name = _("Campaign industry rules")
        fields = ("campaign", "code", "excluded", "label")
        import_id_fields = ("campaign", "code")
        use_transactions = False
        clean_model_instances = False
        report_skipped = True

    def service_values(self, row) -> dict:
        values = super().service_values(row)
        # Absent or empty: keep (a new rule includes).
        values["excluded"] = row.get("excluded") if "excluded" in row else None
        return values


class CampaignAreaResource(CampaignRuleResource):
    kind = AREA
    column_aliases = {
        "活动": "campaign",
        "活动代码": "campaign",
        "区划代码": "code",
        "代码": "code",
        "名称": "label",
        "标签": "label",
        "说明": "label",
    }
    import_audit_action = "campaign.area_list_imported"
    export_file_stem = "campaign-areas"

    class Meta:
        model = CampaignArea
        name = _("Campaign areas")
        fields = ("campaign", "code", "label")
        import_id_fields = ("campaign", "code")
        use_transactions = False
        clean_model_instances = False
        report_skipped = True


# --- invoices and entries (export only) ----------------------------------------------------

CONSUMER_NAME = _("consumer's real name")
CONSUMER_PHONE = _("consumer's mobile phone")
CONSUMER_ID = _("consumer ID")


class InvoiceResource(MaskedResourceMixin, resources.ModelResource):
    """Every submission in the changelist's filter, with its processing outcome."""

    number = export_column("number", model=Invoice)
    invoice_type = export_choice_column("invoice_type", Invoice)
    issue_date = export_column("issue_date", model=Invoice)
    seller_uscc = export_column("seller_uscc", model=Invoice)
    seller_name = export_column("seller_name", model=Invoice)
    merchant_name = export_column("merchant__name", _("registered merchant"))
    buyer_name = export_column("buyer_name", model=Invoice)
    buyer_tax_id = export_column("buyer_tax_id", model=Invoice)
    amount = export_column("amount", model=Invoice)
    tax = export_column("tax", model=Invoice)
    total = export_column("total", model=Invoice)
    status = export_choice_column("status", Invoice)
    rejection_code = export_column("rejection_code", model=Invoice)
    source_channel = export_choice_column("source_channel", Invoice)
    campaign = export_column("campaign__code", Invoice._meta.get_field("campaign").verbose_name)
    submitted_at = export_column("submitted_at", model=Invoice)
    decided_at = export_column("decided_at", model=Invoice)
    entered_at = export_column("entered_at", model=Invoice)
    consumer = export_column("consumer__public_id", CONSUMER_ID)
    consumer_name = export_column("consumer__real_name", CONSUMER_NAME)
    consumer_phone = export_column("consumer__phone", CONSUMER_PHONE)

    personal_data_fields = {
        "buyer_name": mask_name,
        "consumer_name": mask_name,
        "consumer_phone": mask_phone,
    }
    export_select_related = ("merchant", "campaign", "consumer")
    export_file_stem = "invoices"

    class Meta:
        model = Invoice
        name = _("Invoices")
        fields = (
            "number",
            "invoice_type",
            "issue_date",
            "seller_uscc",
            "seller_name",
            "merchant_name",
            "buyer_name",
            "buyer_tax_id",
            "amount",
            "tax",
            "total",
            "status",
            "rejection_code",
            "source_channel",
            "campaign",
            "submitted_at",
            "decided_at",
            "entered_at",
            "consumer",
            "consumer_name",
            "consumer_phone",
        )


class CampaignEntryResource(MaskedResourceMixin, resources.ModelResource):
    """The campaign's entries: invoices accepted into it (`accepted` with an entry time) among
    the changelist's filter. Reversed (red-flushed) invoices have left the campaign and are not
    entries."""

    campaign = export_column("campaign__code", Invoice._meta.get_field("campaign").verbose_name)
    number = export_column("number", model=Invoice)
    entered_at = export_column("entered_at", model=Invoice)
    issue_date = export_column("issue_date", model=Invoice)
    total = export_column("total", model=Invoice)
    seller_uscc = export_column("seller_uscc", model=Invoice)
    seller_name = export_column("seller_name", model=Invoice)
    industry_code = export_column("merchant__industry_code", _("industry code"))
    area_code = export_column("merchant__area_code", _("area code"))
    source_channel = export_choice_column("source_channel", Invoice)
    consumer = export_column("consumer__public_id", CONSUMER_ID)
    consumer_name = export_column("consumer__real_name", CONSUMER_NAME)
    consumer_phone = export_column("consumer__phone", CONSUMER_PHONE)

    personal_data_fields = {"consumer_name": mask_name, "consumer_phone": mask_phone}
    export_select_related = ("merchant", "campaign", "consumer")
    export_file_stem = "campaign-entries"

    class Meta:
        model = Invoice
        name = _("Campaign entries")
        fields = (
            "campaign",
            "number",
            "entered_at",
            "issue_date",
            "total",
            "seller_uscc",
            "seller_name",
            "industry_code",
            "area_code",
            "source_channel",
            "consumer",
            "consumer_name",
            "consumer_phone",
        )

    def filter_export(self, queryset, **kwargs):
        return queryset.filter(status=InvoiceStatus.ACCEPTED, entered_at__isnull=False)
