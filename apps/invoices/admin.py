"""Admin for campaigns (configured here), invoices and the tax registry (viewed, never edited)."""

from __future__ import annotations

import re

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ActionForm
from django.contrib.admin.utils import flatten_fieldsets
from django.core.exceptions import ValidationError
from django.db.models import Q
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from apps.common.admin import (
    CachedDistinctValuesFilter,
    LargeTableAdminMixin,
    PersonalDataAdminMixin,
    ReadOnlyAdminMixin,
    ReadOnlyTabularInline,
    masked_display,
    normalize_search_term,
    parse_uuid,
    run_service_action,
)
from apps.common.exceptions import InvalidTransition
from apps.common.import_export import AuditedImportExportMixin, AuditedMaskedExportMixin
from apps.common.masking import mask_name
from apps.common.states import check_transition
from apps.merchants.validators import USCC_ALPHABET

from .choices import CAMPAIGN_TRANSITIONS, CampaignStatus, InvoiceStatus, InvoiceType
from .models import (
    Campaign,
    CampaignArea,
    CampaignIndustry,
    Invoice,
    InvoiceStatusChange,
    TaxInvoiceRecord,
    default_invoice_types,
)
from .resources import (
    CampaignAreaResource,
    CampaignEntryResource,
    CampaignIndustryResource,
    InvoiceResource,
)
from .services import invoice_review

INVOICE_NUMBER_RE = re.compile(r"[0-9]{20}")
USCC_RE = re.compile(rf"[{USCC_ALPHABET}]{{18}}")


def classify_search_term(search_term: str) -> tuple[str, object] | None:
    """What an official typed: `("number", …)`, `("uscc", …)`, `("uid", UUID)` or None.

    Searches on the invoice tables are exact and indexed: a pattern match over ten million rows
    would take the database down with it.
    """
    term = normalize_search_term(search_term)
    if INVOICE_NUMBER_RE.fullmatch(term):
        return "number", term
    if USCC_RE.fullmatch(term):
        return "uscc", term
    uid = parse_uuid(search_term)
    if uid is not None:
        return "uid", uid
    return None


def admin_change_link(obj, text=None):
    url = reverse(f"admin:{obj._meta.app_label}_{obj._meta.model_name}_change", args=[obj.pk])
    return format_html('<a href="{}">{}</a>', url, text if text is not None else obj)


# --- Campaigns ------------------------------------------------------------------------------


class CampaignIndustryInline(admin.TabularInline):
    model = CampaignIndustry
    extra = 0
    fields = ("code", "excluded", "label")


class CampaignAreaInline(admin.TabularInline):
    model = CampaignArea
    extra = 0
    fields = ("code", "label")


class CampaignAdminForm(forms.ModelForm):
    """Invoice types as checkboxes; status limited to the moves `CAMPAIGN_TRANSITIONS` allows."""

    allowed_invoice_types = forms.MultipleChoiceField(
        label=Campaign._meta.get_field("allowed_invoice_types").verbose_name,
        choices=InvoiceType.choices,
        widget=forms.CheckboxSelectMultiple,
        # A declared form field does not inherit the model field's default: a new campaign
        # starts with the model's default types ticked.
        initial=default_invoice_types,
    )

    class Meta:
        model = Campaign
        fields = (
            "code",
            "name",
            "city_name",
            "starts_at",
            "ends_at",
            "status",
            "min_total",
            "max_prize_per_invoice",
            "allowed_invoice_types",
            "cap_per_day",
            "cap_per_week",
            "cap_per_month",
            "cap_per_campaign",
            "exclude_enterprise_buyers",
            "exclude_agent_issued",
            "instant_winner_enters_periodic",
        )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.stored_status = self.instance.status if self.instance.pk else None
        status = self.fields.get("status")
        if status is not None and self.stored_status is not None:
            allowed = {self.stored_status, *CAMPAIGN_TRANSITIONS.get(self.stored_status, ())}
            status.choices = [(v, label) for v, label in CampaignStatus.choices if v in allowed]

    def clean_status(self):
        status = self.cleaned_data["status"]
        if self.stored_status is not None and status != self.stored_status:
            try:
                check_transition(
                    CAMPAIGN_TRANSITIONS, self.stored_status, status, entity="campaign"
                )
            except InvalidTransition as exc:
                raise ValidationError(exc.message, code=exc.code) from exc
        return status


@admin.register(Campaign)
class CampaignAdmin(admin.ModelAdmin):
    """A campaign's rules, all of them data the task force changes by notice.

    A new campaign starts as a draft; afterwards the status field offers only the transitions
    the table allows.
    """

    form = CampaignAdminForm
    inlines = (CampaignIndustryInline, CampaignAreaInline)
    list_display = ("code", "name", "status", "starts_at", "ends_at")
    list_filter = ("status",)
    search_fields = ("code", "name")
    fieldsets = (
        (None, {"fields": ("code", "name", "city_name")}),
        (_("Window and status"), {"fields": ("starts_at", "ends_at", "status")}),
        (
            _("Thresholds"),
            {"fields": ("min_total", "max_prize_per_invoice", "allowed_invoice_types")},
        ),
        (
            _("Caps per consumer"),
            {"fields": ("cap_per_day", "cap_per_week", "cap_per_month", "cap_per_campaign")},
        ),
        (_("Exclusions"), {"fields": ("exclude_enterprise_buyers", "exclude_agent_issued")}),
        (_("Draws"), {"fields": ("instant_winner_enters_periodic",)}),
        (_("Record"), {"fields": ("created_at", "updated_at")}),
    )
    readonly_fields = ("created_at", "updated_at")

    def get_readonly_fields(self, request, obj=None):
        readonly = tuple(super().get_readonly_fields(request, obj))
        if obj is None:
            readonly += ("status",)
        return readonly

    def save_model(self, request, obj, form, change):
        """A campaign's rules are configuration: each save is on the audit trail."""
        from apps.audit.models import AuditCategory
        from apps.audit.services import audit_record

        super().save_model(request, obj, form, change)
        audit_record(
            action=f"campaign.{'changed' if change else 'created'}",
            category=AuditCategory.CONFIG,
            target=obj,
            actor=request.user,
            after={name: str(form.cleaned_data.get(name)) for name in form.changed_data},
        )


# --- Invoices -------------------------------------------------------------------------------


def invoice_status_label(value: str) -> str:
    return InvoiceStatus(value).label if value in InvoiceStatus.values else value


class InvoiceStatusChangeInline(ReadOnlyTabularInline):
    """An invoice's history as a timeline, oldest first."""

    model = InvoiceStatusChange
    fields = ("at", "from_label", "to_label", "code", "note", "actor")
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("actor")

    @admin.display(description=InvoiceStatusChange._meta.get_field("from_status").verbose_name)
    def from_label(self, obj):
        return invoice_status_label(obj.from_status) or self.get_empty_value_display()

    @admin.display(description=InvoiceStatusChange._meta.get_field("to_status").verbose_name)
    def to_label(self, obj):
        return invoice_status_label(obj.to_status)


class RejectionCodeFilter(CachedDistinctValuesFilter):
    title = Invoice._meta.get_field("rejection_code").verbose_name
    parameter_name = "rejection_code"
    field_name = "rejection_code"


class ReviewActionForm(ActionForm):
    reason = forms.CharField(label=_("Reason"), required=False, max_length=300)


@admin.register(Invoice)
class InvoiceAdmin(
    AuditedMaskedExportMixin,
    PersonalDataAdminMixin,
    ReadOnlyAdminMixin,
    LargeTableAdminMixin,
    admin.ModelAdmin,
):
    """Consumers' submissions: facts, viewed only. The buyer's name is shown masked.

    Searches are exact (invoice number, seller credit code, UID); sorting is offered only on
    indexed columns. Export (CSV, XLSX; audited, personal data masked without the reveal
    permission): the invoices of the current filter, or only its campaign entries.
    """

    resource_classes = [InvoiceResource, CampaignEntryResource]

    personal_data_fields = ("buyer_name",)
    masked_buyer_name = masked_display(Invoice, "buyer_name", mask_name)

    list_display = (
        "number",
        "status",
        "total",
        "issue_date",
        "merchant_name",
        "masked_buyer_name",
        "source_channel",
        "submitted_at",
        "rejection_code",
    )
    list_filter = (
        "status",
        "source_channel",
        "campaign",
        "invoice_type",
        RejectionCodeFilter,
        "submitted_at",
    )
    date_hierarchy = "submitted_at"
    list_select_related = ("merchant", "consumer", "campaign")
    sortable_by = ("number", "submitted_at")
    # Turns the search box on; `get_search_results` decides what a term matches.
    search_fields = ("=number", "=seller_uscc")
    search_help_text = _("Exact invoice number, seller credit code or UID.")
    raw_id_fields = ("consumer", "merchant", "campaign")
    inlines = (InvoiceStatusChangeInline,)
    action_form = ReviewActionForm
    actions = ("release_held", "reject_held")

    def has_review_permission(self, request) -> bool:
        return request.user.has_perm("invoices.review_invoice")

    @admin.action(
        description=_("Release selected held invoices into the campaign"), permissions=["review"]
    )
    def release_held(self, request, queryset):
        self._review(request, queryset, accept=True)

    @admin.action(description=_("Reject selected held invoices"), permissions=["review"])
    def reject_held(self, request, queryset):
        self._review(request, queryset, accept=False)

    def _review(self, request, queryset, *, accept: bool) -> None:
        reason = (request.POST.get("reason") or "").strip()
        if not reason:
            self.message_user(request, gettext("A reason is required."), messages.ERROR)
            return
        run_service_action(
            self,
            request,
            queryset,
            lambda invoice: invoice_review(
                invoice=invoice, accept=accept, actor=request.user, reason=reason
            ),
            done_message=lambda n: (
                ngettext("%(count)d invoice reviewed.", "%(count)d invoices reviewed.", n)
                % {"count": n}
            ),
        )

    fieldsets = (
        (None, {"fields": ("number", "invoice_type", "issue_date", "issued_at", "uid")}),
        (_("Seller"), {"fields": ("merchant", "seller_name", "seller_uscc")}),
        (_("Buyer"), {"fields": ("consumer", "masked_buyer_name", "buyer_tax_id")}),
        (_("Amounts"), {"fields": ("amount", "tax", "total")}),
        (
            _("Processing"),
            {
                "fields": (
                    "status",
                    "rejection_code",
                    "registry_record",
                    "source_channel",
                    "campaign",
                    "submitted_at",
                    "decided_at",
                    "entered_at",
                    "next_check_at",
                    "verification_attempts",
                )
            },
        ),
        (_("Record"), {"fields": ("created_at", "updated_at")}),
    )
    readonly_fields = tuple(flatten_fieldsets(fieldsets))

    def get_queryset(self, request):
        # The detail view shows all three; the changelist adds `list_select_related`.
        return super().get_queryset(request).select_related("merchant", "consumer", "campaign")

    def get_fieldsets(self, request, obj=None):
        fieldsets = super().get_fieldsets(request, obj)
        if request.user.has_perm("invoices.view_taxinvoicerecord"):
            return fieldsets
        # No link (and no look-up) to a registry page the user may not open.
        return [
            (name, {**options, "fields": [f for f in options["fields"] if f != "registry_record"]})
            for name, options in fieldsets
        ]

    @admin.display(description=Invoice._meta.get_field("merchant").verbose_name)
    def merchant_name(self, obj):
        # The registered merchant's name, or the seller's name as printed if none matched.
        if obj.merchant_id:
            return obj.merchant.name
        return obj.seller_name or self.get_empty_value_display()

    @admin.display(description=TaxInvoiceRecord._meta.verbose_name)
    def registry_record(self, obj):
        record = TaxInvoiceRecord.objects.filter(number=obj.number).only("pk", "status").first()
        if record is None:
            return self.get_empty_value_display()
        return admin_change_link(record, record.get_status_display())

    def get_search_results(self, request, queryset, search_term):
        if not search_term.strip():
            return queryset, False
        match classify_search_term(search_term):
            case ("number", number):
                return queryset.filter(number=number), False
            case ("uscc", uscc):
                return queryset.filter(seller_uscc=uscc), False
            case ("uid", uid):
                return queryset.filter(uid=uid), False
        return queryset.none(), False


@admin.register(TaxInvoiceRecord)
class TaxInvoiceRecordAdmin(ReadOnlyAdminMixin, LargeTableAdminMixin, admin.ModelAdmin):
    """The tax authority's registry as the bulk feed wrote it: viewed only.

    The buyer's name exists here only as a blind index, which is never shown.
    """

    list_display = (
        "number",
        "status",
        "total",
        "issued_at",
        "seller_name",
        "issuer_kind",
        "is_red",
        "reverses_number",
    )
    list_filter = ("status", "issuer_kind", "is_red", "invoice_type")
    # Highest numbers (the latest issued, within a tax office's series) first, through the
    # primary key: no index on issued_at.
    ordering = ("-pk",)
    sortable_by = ("number",)
    # Turns the search box on; `get_search_results` decides what a term matches.
    search_fields = ("=number", "=reverses_number", "=seller_uscc")
    search_help_text = _(
        "Exact invoice number (also finds the red invoices reversing it) or seller credit code."
    )
    fieldsets = (
        (None, {"fields": ("number", "invoice_type", "issued_at", "issuer_kind", "status")}),
        (_("Seller"), {"fields": ("seller_name", "seller_uscc", "industry_code", "area_code")}),
        (_("Buyer"), {"fields": ("buyer_tax_id",)}),
        (_("Amounts"), {"fields": ("amount", "tax", "total", "red_total")}),
        (_("Red-letter reversal"), {"fields": ("is_red", "reverses_number", "red_invoices")}),
        (_("Record"), {"fields": ("last_synced_at",)}),
    )
    readonly_fields = tuple(flatten_fieldsets(fieldsets))

    @admin.display(description=_("red invoices reversing it"))
    def red_invoices(self, obj):
        if obj.is_red:
            return self.get_empty_value_display()
        reds = TaxInvoiceRecord.objects.filter(reverses_number=obj.number).only("pk", "number")
        links = format_html_join(", ", "{}", ((admin_change_link(red),) for red in reds))
        return links or self.get_empty_value_display()

    def get_search_results(self, request, queryset, search_term):
        if not search_term.strip():
            return queryset, False
        match classify_search_term(search_term):
            case ("number", number):
                return queryset.filter(Q(number=number) | Q(reverses_number=number)), False
            case ("uscc", uscc):
                return queryset.filter(seller_uscc=uscc), False
        return queryset.none(), False


# --- Campaign industry and area lists: import and export ----------------------------------


class CampaignListAdmin(AuditedImportExportMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    """A campaign list as a table, for import and export; rules are edited one by one on the
    campaign's page. Imports go through `campaign_lists.campaign_rule_upsert` (validated,
    audited), for users who may add and change the rules."""

    list_filter = ("campaign",)
    list_select_related = ("campaign",)
    search_fields = ("=code",)


@admin.register(CampaignIndustry)
class CampaignIndustryAdmin(CampaignListAdmin):
    resource_classes = [CampaignIndustryResource]
    list_display = ("campaign", "code", "excluded", "label")
    list_filter = ("campaign", "excluded")


@admin.register(CampaignArea)
class CampaignAreaAdmin(CampaignListAdmin):
    resource_classes = [CampaignAreaResource]
    list_display = ("campaign", "code", "label")


from . import admin_feed  # noqa: E402, F401  (the tax-feed upload admin)
