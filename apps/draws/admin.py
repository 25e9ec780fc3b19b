"""Admin for draws: the periodic draw's whole lifecycle, and the instant prize pools.

Periodic draws: the configuration (and its tiers) is edited while the draw is scheduled or
committed; every step is a page (a button on the draw) or a changelist action that calls one
service, gated by a custom permission: `draws.manage_draw` (create, commit, freeze, record
randomness, publish, finalise, cancel), `draws.execute_draw` (start; confirm — by a different
person), `draws.disqualify_winner`. Tickets and winners are read-only; names are masked.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.decorators import method_decorator
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _
from django.views.decorators.cache import never_cache

from apps.common.admin import (
    LargeTableAdminMixin,
    ReadOnlyAdminMixin,
    ReadOnlyTabularInline,
    normalize_search_term,
    run_service_action,
)
from apps.common.crypto import DecryptionError
from apps.common.exceptions import DomainError
from apps.common.import_export import AuditedMaskedExportMixin
from apps.common.masking import mask_name

from . import services
from .choices import EDITABLE_STATUSES, DrawStatus
from .forms import (
    CancelForm,
    CommitForm,
    DisqualifyForm,
    DrawTierFormSet,
    InstantQuotaForm,
    InstantTierFormSet,
    PeriodicDrawForm,
    RandomnessForm,
    StepForm,
)
from .models import (
    DrawStatusChange,
    DrawTicket,
    DrawTier,
    DrawWinner,
    InstantAward,
    InstantDailyQuota,
    InstantPool,
    InstantTier,
    PeriodicDraw,
)
from .resources import DrawWinnerResource, InstantAwardResource
from .selectors import draw_replay

MANAGE, EXECUTE, DISQUALIFY = (
    services.PERM_MANAGE,
    services.PERM_EXECUTE,
    services.PERM_DISQUALIFY,
)
DRAW_PERMISSIONS = (MANAGE, EXECUTE, DISQUALIFY)
INVOICE_NUMBER_RE = re.compile(r"[0-9]{20}")
ENTRY_REF_RE = re.compile(r"[0-9a-f]{16}")


def masked_holder(invoice) -> str:
    try:
        return mask_name(invoice.consumer.real_name) or "*"
    except DecryptionError:
        return "*"


# --- steps ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """One lifecycle step offered on a draw's page: who may, when, what it asks, what it calls."""

    name: str
    label: object
    permission: str
    statuses: tuple[str, ...]
    form: type[StepForm]
    run: Callable
    done: object
    danger: bool = False


def _commit(draw, user, data):
    return services.draw_commit(draw=draw, actor=user, randomness_source=data["randomness_source"])


STEPS = {
    step.name: step
    for step in (
        Step(
            "commit",
            _("Commit: publish the seed commitment"),
            MANAGE,
            (DrawStatus.SCHEDULED,),
            CommitForm,
            _commit,
            _("The seed commitment is published."),
        ),
        Step(
            "freeze",
            _("Freeze the ticket list"),
            MANAGE,
            (DrawStatus.COMMITTED,),
            StepForm,
            lambda d, u, _data: services.draw_freeze(draw=d, actor=u),
            _("The ticket list is frozen."),
        ),
        Step(
            "randomness",
            _("Record the public randomness"),
            MANAGE,
            (DrawStatus.FROZEN,),
            RandomnessForm,
            lambda d, u, data: services.draw_record_randomness(
                draw=d, value=data["value"], actor=u
            ),
            _("The public randomness is recorded."),
        ),
        Step(
            "start",
            _("Start the draw (first person)"),
            EXECUTE,
            (DrawStatus.RANDOMNESS_RECORDED,),
            StepForm,
            lambda d, u, _data: services.draw_start(draw=d, actor=u),
            _("The draw is started; another staff member must confirm it."),
        ),
        Step(
            "confirm",
            _("Confirm and execute the draw (second person)"),
            EXECUTE,
            (DrawStatus.RANDOMNESS_RECORDED,),
            StepForm,
            lambda d, u, _data: services.draw_confirm(draw=d, actor=u),
            _("The draw is executed."),
        ),
        Step(
            "publish",
            _("Publish the results"),
            MANAGE,
            (DrawStatus.DRAWN,),
            StepForm,
            lambda d, u, _data: services.draw_publish(draw=d, actor=u),
            _("The results are published; the public notice period has started."),
        ),
        Step(
            "disqualify",
            _("Disqualify a winner"),
            DISQUALIFY,
            (DrawStatus.PUBLISHED,),
            DisqualifyForm,
            lambda d, u, data: services.draw_disqualify(
                draw=d,
                ticket_no=data["ticket_no"],
                reason=data["reason"],
                note=data["note"],
                actor=u,
            ),
            _("The winner is disqualified; the substitute, if any, is recorded."),
            danger=True,
        ),
        Step(
            "finalise",
            _("Finalise the results"),
            MANAGE,
            (DrawStatus.PUBLISHED,),
            StepForm,
            lambda d, u, _data: services.draw_finalise(draw=d, actor=u),
            _("The results are final."),
        ),
        Step(
            "cancel",
            _("Cancel the draw"),
            MANAGE,
            (
                DrawStatus.SCHEDULED,
                DrawStatus.COMMITTED,
                DrawStatus.FROZEN,
                DrawStatus.RANDOMNESS_RECORDED,
            ),
            CancelForm,
            lambda d, u, data: services.draw_cancel(draw=d, reason=data["reason"], actor=u),
            _("The draw is cancelled."),
            danger=True,
        ),
    )
}


def offered_steps(draw: PeriodicDraw, user) -> list[Step]:
    """The steps this user could take now (the services check again when they are taken)."""
    steps = []
    for step in STEPS.values():
        if draw.status not in step.statuses or not user.has_perm(step.permission):
            continue
        if step.name == "start" and draw.started_by_id is not None:
            continue
        if step.name == "confirm" and draw.started_by_id in (None, user.pk):
            continue
        steps.append(step)
    return steps


# --- periodic draws ------------------------------------------------------------------------


class DrawTierInline(admin.TabularInline):
    """Tiers: editable with the draw's configuration (until the freeze), read-only after."""

    model = DrawTier
    formset = DrawTierFormSet
    extra = 0
    fields = ("rank", "name", "amount", "count")

    def _editable(self, request, obj):
        return request.user.has_perm(MANAGE) and (obj is None or obj.status in EDITABLE_STATUSES)

    def has_view_permission(self, request, obj=None):
        return any(
            request.user.has_perm(p) for p in DRAW_PERMISSIONS
        ) or super().has_view_permission(request, obj)

    def has_add_permission(self, request, obj=None):
        return self._editable(request, obj)

    def has_change_permission(self, request, obj=None):
        return self._editable(request, obj)

    def has_delete_permission(self, request, obj=None):
        return self._editable(request, obj)


class DrawWinnerInline(ReadOnlyTabularInline):
    model = DrawWinner
    fields = (
        "rank",
        "slot",
        "ticket_no",
        "winner",
        "counter",
        "substitute_for",
        "disqualified",
        "disqualification_reason",
        "disqualification_seq",
    )
    readonly_fields = fields
    ordering = ("counter",)

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("ticket__invoice__consumer")

    @admin.display(description=_("winner"))
    def winner(self, obj):
        return masked_holder(obj.ticket.invoice)


class DrawStatusChangeInline(ReadOnlyTabularInline):
    model = DrawStatusChange
    fields = ("at", "from_label", "to_label", "action", "actor", "note")
    readonly_fields = fields
    ordering = ("pk",)

    @admin.display(description=_("from"))
    def from_label(self, obj):
        return DrawStatus(obj.from_status).label if obj.from_status in DrawStatus.values else "—"

    @admin.display(description=_("to"))
    def to_label(self, obj):
        return (
            DrawStatus(obj.to_status).label if obj.to_status in DrawStatus.values else obj.to_status
        )


@admin.register(PeriodicDraw)
class PeriodicDrawAdmin(admin.ModelAdmin):
    """A periodic draw. Configuration is a form until the freeze; every step is a button on
    the draw's page (and, for steps without input, a changelist action)."""

    form = PeriodicDrawForm
    inlines = (DrawTierInline, DrawWinnerInline, DrawStatusChangeInline)
    list_display = (
        "code",
        "name",
        "campaign",
        "status",
        "cutoff_at",
        "ticket_count",
        "started_by",
        "confirmed_by",
    )
    list_filter = ("status", "campaign")
    search_fields = ("=code", "name")
    date_hierarchy = "cutoff_at"
    actions = ("freeze_selected", "start_selected", "confirm_selected", "publish_selected")
    CONFIG = (
        "code",
        "name",
        "campaign",
        "window_starts_at",
        "window_ends_at",
        "cutoff_at",
        "per_holder_limit",
        "notice_days",
        "randomness_source",
    )
    fieldsets = (
        (None, {"fields": ("code", "name", "campaign", "status")}),
        (
            _("Rules"),
            {
                "fields": (
                    "window_starts_at",
                    "window_ends_at",
                    "cutoff_at",
                    "per_holder_limit",
                    "notice_days",
                )
            },
        ),
        (_("Commitment"), {"fields": ("randomness_source", "seed_commitment", "committed_at")}),
        (_("Ticket list"), {"fields": ("ticket_count", "tickets_digest", "frozen_at")}),
        (
            _("Execution"),
            {
                "fields": (
                    "public_randomness",
                    "randomness_recorded_at",
                    "started_by",
                    "started_at",
                    "confirmed_by",
                    "drawn_at",
                )
            },
        ),
        (
            _("Publication"),
            {
                "fields": (
                    "revealed_seed",
                    "published_at",
                    "notice_ends_at",
                    "finalised_at",
                    "cancelled_at",
                    "cancel_reason",
                )
            },
        ),
    )
    DISPLAY_ONLY = (
        "status",
        "seed_commitment",
        "committed_at",
        "ticket_count",
        "tickets_digest",
        "frozen_at",
        "public_randomness",
        "randomness_recorded_at",
        "started_by",
        "started_at",
        "confirmed_by",
        "drawn_at",
        "revealed_seed",
        "published_at",
        "notice_ends_at",
        "finalised_at",
        "cancelled_at",
        "cancel_reason",
    )

    # --- permissions

    def has_manage_permission(self, request) -> bool:
        return request.user.has_perm(MANAGE)

    def has_execute_permission(self, request) -> bool:
        return request.user.has_perm(EXECUTE)

    def has_disqualify_permission(self, request) -> bool:
        return request.user.has_perm(DISQUALIFY)

    def has_view_permission(self, request, obj=None):
        return super().has_view_permission(request, obj) or any(
            request.user.has_perm(p) for p in DRAW_PERMISSIONS
        )

    def has_add_permission(self, request):
        return self.has_manage_permission(request)

    def has_change_permission(self, request, obj=None):
        if not self.has_manage_permission(request):
            return False
        return obj is None or obj.status in EDITABLE_STATUSES

    def has_delete_permission(self, request, obj=None):
        return False  # cancel instead: the record stays

    # --- forms

    def get_fieldsets(self, request, obj=None):
        if obj is None:
            return ((None, {"fields": self.CONFIG}),)
        return super().get_fieldsets(request, obj)

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ()
        if obj.status == DrawStatus.SCHEDULED:
            return self.DISPLAY_ONLY
        committed = [f for f in self.CONFIG if f not in ("name", "notice_days")]
        return (*committed, *self.DISPLAY_ONLY)

    def save_model(self, request, obj, form, change):
        """Saved by `save_related`, together with the tiers, through one service call."""

    def save_related(self, request, form, formsets, change):
        tiers = None
        for formset in formsets:
            if isinstance(formset, DrawTierFormSet):
                tiers = formset.tier_specs()
            # What Django's change message reads from a saved formset.
            formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
        services.draw_save(draw=form.instance, actor=request.user, tiers=tiers)

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except DomainError as exc:
            self.message_user(request, exc.message, messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())

    def change_view(self, request, object_id, form_url="", extra_context=None):
        draw = self.get_object(request, object_id)
        extra_context = {
            **(extra_context or {}),
            "draw_steps": offered_steps(draw, request.user) if draw else [],
        }
        return super().change_view(request, object_id, form_url, extra_context)

    # --- step pages

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        return [
            path(
                "<path:object_id>/step/<slug:step>/",
                self.admin_site.admin_view(self.step_view),
                name=f"{info[0]}_{info[1]}_step",
            ),
            path(
                "<path:object_id>/verify/",
                self.admin_site.admin_view(self.verify_view),
                name=f"{info[0]}_{info[1]}_verify",
            ),
            *super().get_urls(),
        ]

    def _draw_or_404(self, request, object_id) -> PeriodicDraw:
        draw = self.get_object(request, object_id)
        if draw is None or not self.has_view_permission(request, draw):
            raise Http404
        return draw

    @method_decorator(never_cache)
    def step_view(self, request, object_id, step):
        """One step: a confirmation page (with the step's inputs) that calls one service."""
        draw = self._draw_or_404(request, object_id)
        step = STEPS.get(step)
        if step is None:
            raise Http404
        if not request.user.has_perm(step.permission):
            raise PermissionDenied
        form = step.form(request.POST if request.method == "POST" else None, draw=draw)
        if request.method == "POST" and form.is_valid():
            try:
                step.run(draw, request.user, form.cleaned_data)
            except DomainError as exc:
                form.add_error(None, str(exc.message))
            else:
                self.message_user(request, step.done, messages.SUCCESS)
                return HttpResponseRedirect(
                    reverse("admin:draws_periodicdraw_change", args=[draw.pk])
                )
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "original": draw,
            "title": step.label,
            "step": step,
            "form": form,
        }
        return TemplateResponse(request, "admin/draws/periodicdraw/step.html", context)

    @method_decorator(never_cache)
    def verify_view(self, request, object_id):
        """Re-run the draw from the stored data and compare ("verify mode": never writes)."""
        draw = self._draw_or_404(request, object_id)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "original": draw,
            "title": _("Verify by re-running the draw"),
            "report": draw_replay(draw),
        }
        return TemplateResponse(request, "admin/draws/periodicdraw/verify.html", context)

    # --- changelist actions (steps without input)

    def _run(self, request, queryset, call, done):
        run_service_action(
            self,
            request,
            queryset,
            lambda draw: call(draw=draw, actor=request.user),
            done_message=lambda n: (
                ngettext("%(count)d draw: %(done)s", "%(count)d draws: %(done)s", n)
                % {"count": n, "done": done}
            ),
        )

    @admin.action(
        description=_("Freeze the ticket lists of selected draws"), permissions=["manage"]
    )
    def freeze_selected(self, request, queryset):
        self._run(request, queryset, services.draw_freeze, gettext("frozen"))

    @admin.action(description=_("Start selected draws (first person)"), permissions=["execute"])
    def start_selected(self, request, queryset):
        self._run(request, queryset, services.draw_start, gettext("started"))

    @admin.action(
        description=_("Confirm and execute selected draws (second person)"),
        permissions=["execute"],
    )
    def confirm_selected(self, request, queryset):
        self._run(request, queryset, services.draw_confirm, gettext("executed"))

    @admin.action(description=_("Publish the results of selected draws"), permissions=["manage"])
    def publish_selected(self, request, queryset):
        self._run(request, queryset, services.draw_publish, gettext("published"))


class DrawViewMixin:
    """Read-only draw records, visible to whoever may view or work on draws."""

    def has_view_permission(self, request, obj=None):
        return super().has_view_permission(request, obj) or any(
            request.user.has_perm(p) for p in DRAW_PERMISSIONS
        )


@admin.register(DrawTicket)
class DrawTicketAdmin(DrawViewMixin, ReadOnlyAdminMixin, LargeTableAdminMixin, admin.ModelAdmin):
    """Frozen tickets (millions): exact searches only, by ticket number or entry reference."""

    list_display = ("draw", "ticket_no", "entry_ref", "holder_ref", "eligible_at", "invoice")
    list_filter = ("draw",)
    list_select_related = ("draw", "invoice")
    ordering = ("draw", "ticket_no")
    sortable_by = ()
    # Turns the search box on; `get_search_results` decides what a term matches.
    search_fields = ("=entry_ref",)
    search_help_text = _(
        "Exact invoice number, ticket number or entry reference (select a draw first for the "
        "last two)."
    )
    raw_id_fields = ("invoice",)

    def get_search_results(self, request, queryset, search_term):
        term = normalize_search_term(search_term).lower()
        if not term:
            return queryset, False
        if INVOICE_NUMBER_RE.fullmatch(term):
            return queryset.filter(invoice__number=term), False
        if term.isdigit():
            return queryset.filter(ticket_no=int(term)), False
        if ENTRY_REF_RE.fullmatch(term):
            return queryset.filter(entry_ref=term), False
        return queryset.none(), False


@admin.register(DrawWinner)
class DrawWinnerAdmin(
    AuditedMaskedExportMixin, DrawViewMixin, ReadOnlyAdminMixin, admin.ModelAdmin
):
    resource_classes = [DrawWinnerResource]  # export: masked unless reveal, audited
    list_display = (
        "draw",
        "rank",
        "slot",
        "ticket_no",
        "winner",
        "amount",
        "substitute_for",
        "disqualified",
        "disqualification_reason",
    )
    list_filter = ("draw", "disqualified", "rank")
    list_select_related = ("draw", "tier", "ticket__invoice__consumer")
    ordering = ("draw", "counter")
    exclude = ("ticket",)
    readonly_fields = ("winner", "amount")

    @admin.display(description=_("winner"))
    def winner(self, obj):
        return masked_holder(obj.ticket.invoice)

    @admin.display(description=_("amount"))
    def amount(self, obj):
        return obj.tier.amount


# --- instant pools -----------------------------------------------------------------------


class InstantTierInline(admin.TabularInline):
    model = InstantTier
    formset = InstantTierFormSet
    extra = 0
    can_delete = False  # tiers with awards stay; set the quantity to what was awarded instead
    fields = (
        "name",
        "kind",
        "face_value",
        "total_quantity",
        "remaining",
        "probability",
        "min_spend",
        "valid_industries",
        "valid_days",
    )
    readonly_fields = ("remaining",)


@admin.register(InstantPool)
class InstantPoolAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "campaign",
        "sponsor",
        "odds_mode",
        "active_from",
        "active_until",
        "enabled",
    )
    list_filter = ("enabled", "odds_mode", "campaign")
    search_fields = ("name",)
    raw_id_fields = ("sponsor",)
    inlines = (InstantTierInline,)
    actions = ("plan_quotas",)

    def save_model(self, request, obj, form, change):
        """A pool's settings are configuration: each save is on the audit trail (its tiers are
        audited by `instant_tier_save`)."""
        from apps.audit.models import AuditCategory
        from apps.audit.services import audit_record

        super().save_model(request, obj, form, change)
        audit_record(
            action=f"instant_pool.{'changed' if change else 'created'}",
            category=AuditCategory.CONFIG,
            target=obj,
            actor=request.user,
            after={name: str(form.cleaned_data.get(name)) for name in form.changed_data},
        )

    def save_formset(self, request, form, formset, change):
        if formset.model is not InstantTier:
            return super().save_formset(request, form, formset, change)
        for tier in formset.save(commit=False):
            services.instant_tier_save(tier=tier, actor=request.user)
        formset.save_m2m()
        return None

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except DomainError as exc:
            self.message_user(request, exc.message, messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())

    @admin.action(
        description=_("Plan daily quotas evenly over the remaining days"), permissions=["change"]
    )
    def plan_quotas(self, request, queryset):
        run_service_action(
            self,
            request,
            queryset,
            lambda pool: services.instant_plan_quotas(pool=pool, actor=request.user),
            done_message=lambda n: (
                ngettext(
                    "Daily quotas planned for %(count)d pool.",
                    "Daily quotas planned for %(count)d pools.",
                    n,
                )
                % {"count": n}
            ),
        )


@admin.register(InstantDailyQuota)
class InstantDailyQuotaAdmin(admin.ModelAdmin):
    """Per-day quotas: raise a holiday's, lower a quiet day's (never below what was awarded)."""

    form = InstantQuotaForm
    list_display = ("tier", "day", "quota", "awarded")
    list_filter = ("tier__pool", "day")
    list_select_related = ("tier",)
    date_hierarchy = "day"
    readonly_fields = ("awarded",)
    raw_id_fields = ("tier",)


@admin.register(InstantAward)
class InstantAwardAdmin(
    AuditedMaskedExportMixin, ReadOnlyAdminMixin, LargeTableAdminMixin, admin.ModelAdmin
):
    resource_classes = [InstantAwardResource]  # export: masked unless reveal, audited
    list_display = ("drawn_at", "pool", "tier", "kind", "amount", "winner", "payable_after")
    list_filter = ("pool", "kind")
    list_select_related = ("pool", "tier", "invoice__consumer")
    date_hierarchy = "drawn_at"
    exclude = ("consumer",)
    readonly_fields = ("winner",)

    @admin.display(description=_("winner"))
    def winner(self, obj):
        return masked_holder(obj.invoice)
