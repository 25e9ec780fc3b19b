"""Admin for merchants: registration data is edited here, status only through actions."""

from __future__ import annotations

import re

from django import forms
from django.contrib import admin
from django.contrib.admin.helpers import ActionForm
from django.db.models import Q
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from apps.common.admin import LargeTableAdminMixin, normalize_search_term, run_service_action
from apps.common.areas import ZHENGZHOU_AREAS
from apps.common.import_export import AuditedImportExportMixin

from .choices import MerchantStatus
from .models import Merchant
from .resources import MerchantResource
from .services import STATUS_REASON_MAX_LENGTH, merchant_set_status
from .validators import USCC_ALPHABET, validate_uscc

AREA_LABEL = Merchant._meta.get_field("area_code").verbose_name
# A search term that could be the beginning of a credit code.
USCC_PREFIX_RE = re.compile(rf"[{USCC_ALPHABET}]{{2,18}}")


def area_display(code: str) -> str:
    """`410105` → `金水区 (410105)`; a code outside Zhengzhou shows as it is."""
    name = ZHENGZHOU_AREAS.get(code)
    return f"{name} ({code})" if name else code


class AreaListFilter(admin.SimpleListFilter):
    """Zhengzhou's districts by name (no query needed), plus everything else."""

    title = AREA_LABEL
    parameter_name = "area_code"
    OTHER = "other"

    def lookups(self, request, model_admin):
        return [(code, area_display(code)) for code in ZHENGZHOU_AREAS] + [
            (self.OTHER, _("Other areas"))
        ]

    def queryset(self, request, queryset):
        value = self.value()
        if value == self.OTHER:
            return queryset.exclude(area_code__in=list(ZHENGZHOU_AREAS))
        if value:
            return queryset.filter(area_code=value)
        return queryset


class MerchantAdminForm(forms.ModelForm):
    """Accepts the credit code as people type it (lower case, full-width) and stores it
    canonical; an empty area code defaults to the code's registering area (characters 3–8)."""

    class Meta:
        model = Merchant
        fields = ("uscc", "name", "address", "area_code", "industry_code")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "area_code" in self.fields:
            self.fields["area_code"].required = False
            self.fields["area_code"].help_text = _(
                "Leave empty to use characters 3 to 8 of the credit code."
            )

    def clean_uscc(self):
        return validate_uscc(self.cleaned_data["uscc"])

    def clean(self):
        cleaned = super().clean()
        if "area_code" in self.fields and not cleaned.get("area_code"):
            uscc = cleaned.get("uscc") or self.instance.uscc
            if uscc:
                cleaned["area_code"] = uscc[2:8]
            else:
                self.add_error("area_code", _("Enter the area code."))
        return cleaned


class MerchantActionForm(ActionForm):
    reason = forms.CharField(label=_("Reason"), required=False, max_length=STATUS_REASON_MAX_LENGTH)


@admin.register(Merchant)
class MerchantAdmin(AuditedImportExportMixin, LargeTableAdminMixin, admin.ModelAdmin):
    """Sellers. Status is read-only on the form: suspending, blacklisting and reactivating are
    actions that go through `merchant_set_status` (transition table, row lock, reason).

    Import (CSV, XLSX; dry-run preview first) creates or updates merchants through
    `merchant_upsert`, status moves included; export is audited (docs/formats.md)."""

    resource_classes = [MerchantResource]

    form = MerchantAdminForm
    action_form = MerchantActionForm
    actions = ("suspend", "blacklist", "reactivate")

    list_display = ("name", "uscc", "area", "industry_code", "status", "updated_at")
    list_filter = ("status", AreaListFilter, "industry_code")
    # Turns the search box on; `get_search_results` decides what a term matches.
    search_fields = ("name", "=uscc")
    search_help_text = _("Part of the name, or the beginning of the credit code.")
    fieldsets = (
        (None, {"fields": ("uscc", "name", "address")}),
        (_("Classification"), {"fields": ("area_code", "industry_code")}),
        (_("Status"), {"fields": ("status", "status_reason", "status_changed_at")}),
        (_("Record"), {"fields": ("created_at", "updated_at")}),
    )
    readonly_fields = ("status", "status_reason", "status_changed_at", "created_at", "updated_at")

    @admin.display(description=AREA_LABEL, ordering="area_code")
    def area(self, obj):
        return area_display(obj.area_code)

    def get_readonly_fields(self, request, obj=None):
        readonly = tuple(super().get_readonly_fields(request, obj))
        if obj is not None:
            # Invoices carry the seller's credit code: it identifies the merchant for good.
            readonly += ("uscc",)
        return readonly

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        condition = Q(name__icontains=term)
        code = normalize_search_term(term)
        if USCC_PREFIX_RE.fullmatch(code):
            # Case-sensitive prefix match on the canonical code: served by the unique index.
            condition |= Q(uscc__startswith=code)
        return queryset.filter(condition), False

    # --- status actions ----------------------------------------------------------------

    @admin.action(description=_("Suspend selected merchants"), permissions=["change"])
    def suspend(self, request, queryset):
        self._set_status(request, queryset, MerchantStatus.SUSPENDED)

    @admin.action(description=_("Blacklist selected merchants"), permissions=["change"])
    def blacklist(self, request, queryset):
        self._set_status(request, queryset, MerchantStatus.BLACKLISTED)

    @admin.action(description=_("Reactivate selected merchants"), permissions=["change"])
    def reactivate(self, request, queryset):
        self._set_status(request, queryset, MerchantStatus.ACTIVE)

    def _set_status(self, request, queryset, status: MerchantStatus) -> None:
        reason = (request.POST.get("reason") or "").strip() or gettext(
            "Admin action by %(user)s"
        ) % {"user": request.user.get_username()}

        def done_message(count: int) -> str:
            return ngettext(
                "%(count)d merchant changed to “%(status)s”.",
                "%(count)d merchants changed to “%(status)s”.",
                count,
            ) % {"count": count, "status": status.label}

        run_service_action(
            self,
            request,
            queryset,
            lambda merchant: merchant_set_status(
                merchant=merchant, status=status, reason=reason, actor=request.user
            ),
            done_message=done_message,
        )
