"""Back office for prizes and money: funds and their ledger, awards, coupons, payout accounts,
payout batches (maker prepares, a different checker approves), payouts and reconciliation.

Nothing here edits money rows: every change is an action or a small form page that calls one
service, which checks permissions, transitions and writes the audit trail.
"""

from __future__ import annotations

from decimal import Decimal

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.core.validators import MinValueValidator
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _
from django.views.decorators.cache import never_cache

from apps.audit.services import audit_record
from apps.common.admin import (
    ReadOnlyAdminMixin,
    ReadOnlyTabularInline,
    form_action,
    run_service_action,
)
from apps.common.exceptions import DomainError
from apps.common.import_export import AuditedMaskedExportMixin
from apps.common.masking import mask_name
from apps.invoices.models import Campaign

from . import ledger, services
from .choices import AccountKind, AwardStatus
from .models import (
    Award,
    AwardStatusChange,
    Coupon,
    Fund,
    LedgerEntry,
    Payout,
    PayoutAccount,
    PayoutBatch,
    PayoutStatusChange,
    PrizePolicy,
    ProviderStatement,
    ReconciliationIssue,
)
from .resources import PayoutResource


def _winner(consumer) -> str:
    return mask_name(consumer.real_name) or "—"


class FormPageMixin:
    """A small form page inside the admin that calls one service."""

    def _form_page(self, request, *, form, title, submit_label, intro="", original=None):
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": title,
            "form": form,
            "submit_label": submit_label,
            "intro": intro,
            "original": original,
        }
        return TemplateResponse(request, "admin/prizes/form_page.html", context)

    def _changelist(self):
        opts = self.model._meta
        return HttpResponseRedirect(reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"))


@admin.register(PrizePolicy)
class PrizePolicyAdmin(admin.ModelAdmin):
    list_display = (
        "campaign",
        "tax_exempt_limit",
        "tax_rate",
        "claim_days",
        "coupon_valid_days",
        "reverify_before_payout",
    )

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        audit_record(
            action="prize_policy.saved",
            category="config",
            target=obj,
            actor=request.user,
            after={name: str(form.cleaned_data.get(name)) for name in form.changed_data},
        )


class DepositForm(forms.Form):
    amount = forms.DecimalField(
        label=_("amount"),
        max_digits=14,
        decimal_places=2,
        validators=[MinValueValidator(Decimal("0.01"))],
    )
    reference = forms.CharField(
        label=_("reference"),
        max_length=60,
        help_text=_("The payment order or budget document number; a reference is booked once."),
    )
    memo = forms.CharField(label=_("memo"), max_length=200)


@admin.register(Fund)
class FundAdmin(FormPageMixin, admin.ModelAdmin):
    list_display = (
        "name",
        "campaign",
        "source",
        "sponsor",
        "is_default",
        "budget",
        "available",
        "reserved",
        "paid",
        "tax_withheld",
    )
    list_filter = ("campaign", "source")
    list_select_related = ("campaign", "sponsor")
    autocomplete_fields = ("sponsor",)
    readonly_fields = ("budget", "available", "reserved", "paid", "tax_withheld")

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        if obj is not None:
            fields += ["campaign", "source", "sponsor"]
        return fields

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("accounts")

    def _balance(self, obj, kind):
        for account in obj.accounts.all():
            if account.kind == kind:
                return -account.balance if kind == AccountKind.FUNDING else account.balance
        return Decimal("0.00")

    @admin.display(description=_("budget received"))
    def budget(self, obj):
        return self._balance(obj, AccountKind.FUNDING)

    @admin.display(description=_("available"))
    def available(self, obj):
        return self._balance(obj, AccountKind.AVAILABLE)

    @admin.display(description=_("reserved"))
    def reserved(self, obj):
        return self._balance(obj, AccountKind.RESERVED)

    @admin.display(description=_("paid"))
    def paid(self, obj):
        return self._balance(obj, AccountKind.DISBURSED)

    @admin.display(description=_("tax withheld"))
    def tax_withheld(self, obj):
        return self._balance(obj, AccountKind.TAX_WITHHELD)

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        ledger.fund_accounts_ensure(obj)
        audit_record(
            action="fund.saved",
            category="config",
            target=obj,
            actor=request.user,
            after={name: str(form.cleaned_data.get(name)) for name in form.changed_data},
        )

    def has_delete_permission(self, request, obj=None):
        return False

    def has_deposit_permission(self, request) -> bool:
        return request.user.has_perm("prizes.add_ledgerentry")

    def get_urls(self):
        return [
            path(
                "<int:object_id>/deposit/",
                self.admin_site.admin_view(self.deposit_view),
                name="prizes_fund_deposit",
            ),
            *super().get_urls(),
        ]

    @method_decorator(never_cache)
    def deposit_view(self, request, object_id):
        if not self.has_deposit_permission(request):
            raise PermissionDenied
        fund = self.get_object(request, str(object_id))
        if fund is None:
            return self._changelist()
        form = DepositForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                entry = ledger.fund_deposit(
                    fund=fund,
                    amount=form.cleaned_data["amount"],
                    key=f"deposit:{fund.pk}:{form.cleaned_data['reference']}",
                    memo=form.cleaned_data["memo"],
                    actor=request.user,
                )
            except DomainError as exc:
                form.add_error(None, str(exc.message))
            else:
                if entry is None:
                    self.message_user(
                        request, gettext("This reference was already booked."), messages.WARNING
                    )
                else:
                    self.message_user(request, gettext("Deposit booked."), messages.SUCCESS)
                return self._changelist()
        return self._form_page(
            request,
            form=form,
            title=gettext("Book a deposit"),
            submit_label=gettext("Book deposit"),
            original=fund,
        )


@admin.register(LedgerEntry)
class LedgerEntryAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "created_at",
        "fund",
        "kind",
        "from_account",
        "to_account",
        "amount",
        "key",
        "actor",
    )
    list_filter = ("fund", "kind")
    list_select_related = ("fund", "from_account__fund", "to_account__fund", "actor")
    search_fields = ("key",)
    date_hierarchy = "created_at"


class AwardHistoryInline(ReadOnlyTabularInline):
    model = AwardStatusChange
    fields = ("created_at", "from_status", "to_status", "reason", "actor")
    readonly_fields = fields


class ReasonForm(forms.Form):
    reason = forms.CharField(label=_("reason"), max_length=300)


def reason_action(model_admin, request, queryset, *, call, title, done_message):
    """An admin action that asks for a reason first, then runs `call(obj, reason)` — one
    service call — for each selected object (errors reported per object)."""
    return form_action(
        model_admin,
        request,
        queryset,
        form_class=ReasonForm,
        call=lambda obj, data: call(obj, data["reason"]),
        title=title,
        done_message=done_message,
    )


@admin.register(Award)
class AwardAdmin(FormPageMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "created_at",
        "name",
        "kind",
        "amount",
        "tax_withheld",
        "status",
        "winner",
        "source",
        "fund",
    )
    list_filter = ("status", "kind", "source", "campaign")
    list_select_related = ("consumer", "fund")
    date_hierarchy = "created_at"
    exclude = ("consumer", "invoice", "instant_award", "draw_winner")
    readonly_fields = ("winner",)
    inlines = [AwardHistoryInline]
    actions = ["cancel_selected", "mark_recovered_selected"]
    search_fields = ("=public_id",)

    @admin.display(description=_("winner"))
    def winner(self, obj):
        return _winner(obj.consumer)

    def has_manage_permission(self, request) -> bool:
        return request.user.has_perm(services.PERM_MANAGE_AWARD)

    def _with_reason(self, request, queryset, call, title, done):
        return reason_action(
            self,
            request,
            queryset,
            call=call,
            title=title,
            done_message=lambda n: (
                ngettext("%(count)d award: %(done)s", "%(count)d awards: %(done)s", n)
                % {"count": n, "done": done}
            ),
        )

    @admin.action(description=_("Cancel selected unpaid awards"), permissions=["manage"])
    def cancel_selected(self, request, queryset):
        def cancel(award, reason):
            # The service leaves paid, finished and in-flight prizes as they are; say so
            # instead of reporting them cancelled.
            result = services.award_cancel(award=award, reason=reason, actor=request.user)
            if result.status != AwardStatus.CANCELLED:
                raise DomainError(
                    "award.not_cancellable",
                    _("Only an unpaid prize with no payment on its way can be cancelled."),
                )

        return self._with_reason(
            request,
            queryset,
            cancel,
            gettext("Cancel awards"),
            gettext("cancelled"),
        )

    @admin.action(description=_("Mark selected awards as recovered"), permissions=["manage"])
    def mark_recovered_selected(self, request, queryset):
        return self._with_reason(
            request,
            queryset,
            lambda award, reason: services.award_mark_recovered(
                award=award, note=reason, actor=request.user
            ),
            gettext("Mark awards recovered"),
            gettext("recovered"),
        )


@admin.register(Coupon)
class CouponAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "__str__",
        "face_value",
        "status",
        "merchant",
        "valid_until",
        "redeemed_by",
        "redeemed_at",
    )
    list_filter = ("status",)
    list_select_related = ("merchant", "redeemed_by")
    exclude = ("code", "code_index", "award")
    date_hierarchy = "created_at"


@admin.register(PayoutAccount)
class PayoutAccountAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("__str__", "kind", "bank_name", "holder", "status", "check_code", "verified_at")
    list_filter = ("status", "kind")
    list_select_related = ("consumer",)
    exclude = ("account_no", "account_no_index", "consumer")
    readonly_fields = ("holder",)

    @admin.display(description=_("holder"))
    def holder(self, obj):
        return _winner(obj.consumer)


class PayoutHistoryInline(ReadOnlyTabularInline):
    model = PayoutStatusChange
    fields = ("created_at", "from_status", "to_status", "via", "note", "actor")
    readonly_fields = fields


@admin.register(Payout)
class PayoutAdmin(AuditedMaskedExportMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    resource_classes = [PayoutResource]  # export: masked unless reveal, audited
    list_display = (
        "request_no",
        "status",
        "amount",
        "tax_withheld",
        "batch",
        "account",
        "attempts",
        "provider_ref",
        "finished_at",
    )
    list_filter = ("status", "batch")
    list_select_related = ("batch", "account")
    search_fields = ("=request_no", "=provider_ref")
    exclude = ("award",)
    inlines = [PayoutHistoryInline]
    actions = ["refresh_selected"]

    def has_refresh_permission(self, request) -> bool:
        return request.user.has_perm(services.PERM_RECONCILE)

    @admin.action(
        description=_("Ask the provider for the status of selected payouts"),
        permissions=["refresh"],
    )
    def refresh_selected(self, request, queryset):
        run_service_action(
            self,
            request,
            queryset,
            lambda payout: services.payout_refresh(payout_id=payout.pk),
            done_message=lambda n: (
                ngettext("%(count)d payout asked about", "%(count)d payouts asked about", n)
                % {"count": n}
            ),
        )


class PayoutInline(ReadOnlyTabularInline):
    model = Payout
    fields = ("request_no", "status", "amount", "tax_withheld", "provider_ref", "fail_code")
    readonly_fields = fields
    show_change_link = True


class PrepareBatchForm(forms.Form):
    campaign = forms.ModelChoiceField(label=_("campaign"), queryset=Campaign.objects.all())


@admin.register(PayoutBatch)
class PayoutBatchAdmin(FormPageMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "reference",
        "campaign",
        "status",
        "payout_count",
        "total_amount",
        "total_tax",
        "created_by",
        "approved_by",
        "created_at",
    )
    list_filter = ("status", "campaign")
    list_select_related = ("campaign", "created_by", "approved_by")
    inlines = [PayoutInline]
    actions = ["approve_selected", "reject_selected"]

    def has_prepare_permission(self, request) -> bool:
        return request.user.has_perm(services.PERM_PREPARE)

    def has_approve_permission(self, request) -> bool:
        return request.user.has_perm(services.PERM_APPROVE)

    def changelist_view(self, request, extra_context=None):
        extra_context = {
            **(extra_context or {}),
            "can_prepare": self.has_prepare_permission(request),
        }
        return super().changelist_view(request, extra_context)

    def get_urls(self):
        return [
            path(
                "prepare/",
                self.admin_site.admin_view(self.prepare_view),
                name="prizes_payoutbatch_prepare",
            ),
            *super().get_urls(),
        ]

    @method_decorator(never_cache)
    def prepare_view(self, request):
        if not self.has_prepare_permission(request):
            raise PermissionDenied
        form = PrepareBatchForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                batch = services.payout_batch_prepare(
                    campaign=form.cleaned_data["campaign"], actor=request.user
                )
            except DomainError as exc:
                form.add_error(None, str(exc.message))
            else:
                self.message_user(
                    request,
                    gettext("Batch %(ref)s prepared with %(n)d payouts; a checker must approve it.")
                    % {"ref": batch.reference, "n": batch.payout_count},
                    messages.SUCCESS,
                )
                return self._changelist()
        return self._form_page(
            request,
            form=form,
            title=gettext("Prepare a payout batch"),
            submit_label=gettext("Prepare batch"),
            intro=gettext(
                "All claimed cash prizes of the campaign not yet in a batch are "
                "gathered. A different finance checker approves the batch."
            ),
        )

    @admin.action(description=_("Approve selected batches (checker)"), permissions=["approve"])
    def approve_selected(self, request, queryset):
        run_service_action(
            self,
            request,
            queryset,
            lambda batch: services.payout_batch_approve(batch=batch, actor=request.user),
            done_message=lambda n: (
                ngettext("%(count)d batch approved", "%(count)d batches approved", n) % {"count": n}
            ),
        )

    @admin.action(description=_("Reject selected batches (checker)"), permissions=["approve"])
    def reject_selected(self, request, queryset):
        return reason_action(
            self,
            request,
            queryset,
            call=lambda batch, reason: services.payout_batch_reject(
                batch=batch, reason=reason, actor=request.user
            ),
            title=gettext("Reject batches"),
            done_message=lambda n: (
                ngettext("%(count)d batch rejected", "%(count)d batches rejected", n) % {"count": n}
            ),
        )


class ReconciliationIssueInline(ReadOnlyTabularInline):
    model = ReconciliationIssue
    fields = ("kind", "request_no", "line_no", "ours", "theirs", "resolved", "resolution_note")
    readonly_fields = fields


class StatementForm(forms.Form):
    day = forms.DateField(label=_("statement day"), initial=timezone.localdate)
    file = forms.FileField(label=_("statement file (CSV)"))


@admin.register(ProviderStatement)
class ProviderStatementAdmin(FormPageMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "day",
        "file_name",
        "line_count",
        "matched_count",
        "mismatch_count",
        "resolved_unknown_count",
        "imported_by",
        "created_at",
    )
    inlines = [ReconciliationIssueInline]

    def has_reconcile_permission(self, request) -> bool:
        return request.user.has_perm(services.PERM_RECONCILE)

    def changelist_view(self, request, extra_context=None):
        extra_context = {
            **(extra_context or {}),
            "can_import": self.has_reconcile_permission(request),
        }
        return super().changelist_view(request, extra_context)

    def get_urls(self):
        return [
            path(
                "import/",
                self.admin_site.admin_view(self.import_view),
                name="prizes_providerstatement_import",
            ),
            *super().get_urls(),
        ]

    @method_decorator(never_cache)
    def import_view(self, request):
        if not self.has_reconcile_permission(request):
            raise PermissionDenied
        form = StatementForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            upload = form.cleaned_data["file"]
            if upload.size > 50 * 1024 * 1024:
                form.add_error("file", gettext("The file is larger than 50 MB."))
            else:
                try:
                    statement = services.statement_reconcile(
                        day=form.cleaned_data["day"],
                        data=upload.read(),
                        file_name=upload.name,
                        actor=request.user,
                    )
                except DomainError as exc:
                    form.add_error(None, str(exc.message))
                else:
                    self.message_user(
                        request,
                        gettext(
                            "%(lines)d lines: %(matched)d matched, %(mismatches)d "
                            "mismatches for finance."
                        )
                        % {
                            "lines": statement.line_count,
                            "matched": statement.matched_count,
                            "mismatches": statement.mismatch_count,
                        },
                        messages.SUCCESS if not statement.mismatch_count else messages.WARNING,
                    )
                    return HttpResponseRedirect(
                        reverse("admin:prizes_providerstatement_change", args=[statement.pk])
                    )
        return self._form_page(
            request,
            form=form,
            title=gettext("Import a provider statement"),
            submit_label=gettext("Reconcile"),
        )


@admin.register(ReconciliationIssue)
class ReconciliationIssueAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "created_at",
        "kind",
        "request_no",
        "line_no",
        "ours",
        "theirs",
        "resolved",
        "resolved_by",
    )
    list_filter = ("resolved", "kind")
    search_fields = ("=request_no",)
    actions = ["resolve_selected"]

    def has_reconcile_permission(self, request) -> bool:
        return request.user.has_perm(services.PERM_RECONCILE)

    @admin.action(
        description=_("Record how selected mismatches were settled"), permissions=["reconcile"]
    )
    def resolve_selected(self, request, queryset):
        return reason_action(
            self,
            request,
            queryset,
            call=lambda issue, reason: services.reconciliation_resolve(
                issue=issue, note=reason, actor=request.user
            ),
            title=gettext("Settle mismatches"),
            done_message=lambda n: (
                ngettext("%(count)d mismatch settled", "%(count)d mismatches settled", n)
                % {"count": n}
            ),
        )
