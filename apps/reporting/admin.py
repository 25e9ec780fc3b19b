"""The statistics dashboard (an admin custom view), the outbox with its dead-letter replay,
the delivery log, and partner API keys.

Who sees what: `reporting.view_dashboard` opens the dashboard and its exports; without
`reporting.view_small_cells` every figure shown or exported is small-cell suppressed, and any
export marked "for publication" is suppressed whoever asks. Exports are audited.
"""

from __future__ import annotations

from datetime import timedelta

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _
from django.views.decorators.cache import never_cache

from apps.audit.models import AuditCategory
from apps.audit.services import audit_record
from apps.common.admin import ReadOnlyAdminMixin, run_service_action
from apps.common.exceptions import DomainError

from . import exports, selectors, services
from .models import (
    Dashboard,
    DeliveryAttempt,
    OutboxEvent,
    OutboxStatus,
    PartnerAPIKey,
    PartnerScope,
)

PERM_DASHBOARD = "reporting.view_dashboard"
PERM_SMALL_CELLS = "reporting.view_small_cells"
CHART_PANELS = ("trend", "funnel", "areas", "industries", "rejections", "awards", "burn", "risk")


def may_see_dashboard(user) -> bool:
    return user.is_active and user.is_staff and user.has_perm(PERM_DASHBOARD)


@admin.register(Dashboard)
class DashboardAdmin(admin.ModelAdmin):
    """The dashboard: filters, KPI tiles, charts, tables and per-panel CSV/XLSX exports."""

    actions = None

    def has_module_permission(self, request):
        return may_see_dashboard(request.user)

    def has_view_permission(self, request, obj=None):
        return may_see_dashboard(request.user)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_model_perms(self, request):
        return {"view": may_see_dashboard(request.user)}

    def get_urls(self):
        return [
            path(
                "export/<str:key>.<str:fmt>",
                self.admin_site.admin_view(self.export_view),
                name="reporting_dashboard_export",
            ),
            *super().get_urls(),
        ]

    @method_decorator(never_cache)
    def changelist_view(self, request, extra_context=None):
        if not may_see_dashboard(request.user):
            raise PermissionDenied
        filters = selectors.Filters.parse(request.GET)
        suppressed = not request.user.has_perm(PERM_SMALL_CELLS)
        panels = {
            key: selectors.panel(key, filters, suppressed=suppressed).as_dict()
            for key in selectors.PANELS
        }
        query = filters.as_query()
        export_base = reverse("admin:reporting_dashboard_export", args=["KEY", "csv"])
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": _("Statistics dashboard"),
            "filters": filters,
            "campaigns": selectors.campaigns_for_filter(),
            "panels": panels,
            "today": panels["today"],
            "tables": [panels[k] for k in selectors.PANELS if k != "today"],
            "chart_panels": CHART_PANELS,
            "suppressed": suppressed,
            "threshold": selectors.small_cell_threshold(),
            "query": query,
            "export_base": export_base,
            "generated_at": timezone.localtime(),
        }
        return TemplateResponse(request, "admin/reporting/dashboard.html", context)

    @method_decorator(never_cache)
    def export_view(self, request, key: str, fmt: str):
        if not may_see_dashboard(request.user):
            raise PermissionDenied
        if key not in selectors.PANELS or fmt not in ("csv", "xlsx"):
            raise Http404
        filters = selectors.Filters.parse(request.GET)
        publish = request.GET.get("publish") == "1"
        suppressed = publish or not request.user.has_perm(PERM_SMALL_CELLS)
        table = selectors.panel(key, filters, suppressed=suppressed)
        audit_record(
            action="reporting.exported",
            category=AuditCategory.EXPORT,
            target_type="reporting.dashboard",
            target_id=key,
            actor=request.user,
            after={
                "panel": key,
                "format": fmt,
                "filters": filters.as_query(),
                "suppressed": suppressed,
                "rows": len(table.rows),
            },
        )
        stamp = timezone.localtime().strftime("%Y%m%d-%H%M")
        return exports.response(table, fmt, stamp=stamp)


# --- The exchange --------------------------------------------------------------------------------


@admin.register(OutboxEvent)
class OutboxEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Events for the government app; dead letters are replayed with the action."""

    list_display = (
        "id",
        "stream",
        "seq",
        "event_type",
        "status",
        "attempts",
        "occurred_at",
        "next_attempt_at",
        "delivered_at",
        "last_error",
    )
    list_filter = ("status", "event_type")
    search_fields = ("stream",)
    actions = ["replay"]
    show_full_result_count = False

    def has_replay_permission(self, request) -> bool:
        return request.user.has_perm("reporting.replay_outboxevent")

    @admin.action(description=_("Replay selected dead-letter events"), permissions=["replay"])
    def replay(self, request, queryset):
        ids = list(queryset.filter(status=OutboxStatus.DEAD).values_list("pk", flat=True))
        count = services.outbox_replay(event_ids=ids, actor=request.user, reason="admin replay")
        self.message_user(
            request,
            ngettext("%(count)d event queued again.", "%(count)d events queued again.", count)
            % {"count": count},
            messages.SUCCESS if count else messages.WARNING,
        )


@admin.register(DeliveryAttempt)
class DeliveryAttemptAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "started_at",
        "event_count",
        "first_event",
        "last_event",
        "http_status",
        "ok",
        "error",
        "duration_ms",
    )
    list_filter = ("ok", "http_status")
    show_full_result_count = False


class PartnerKeyIssueForm(forms.Form):
    partner = forms.CharField(label=_("Partner system"), max_length=200)
    scopes = forms.MultipleChoiceField(
        label=_("Scopes"), choices=PartnerScope.choices, widget=forms.CheckboxSelectMultiple
    )
    valid_days = forms.IntegerField(
        label=_("Valid for (days)"), min_value=1, max_value=730, initial=365
    )


@admin.register(PartnerAPIKey)
class PartnerAPIKeyAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("key_id", "partner", "scopes", "expires_at", "revoked_at", "last_used_at")
    list_filter = ("revoked_at",)
    search_fields = ("key_id", "partner")
    exclude = ("secret_hash",)
    actions = ["revoke"]
    change_list_template = "admin/reporting/partnerapikey/change_list.html"

    def has_issue_permission(self, request) -> bool:
        return request.user.has_perm("reporting.issue_partnerapikey")

    def has_revoke_permission(self, request) -> bool:
        return request.user.has_perm("reporting.revoke_partnerapikey")

    def get_urls(self):
        return [
            path(
                "issue/",
                self.admin_site.admin_view(self.issue_view),
                name="reporting_partnerapikey_issue",
            ),
            *super().get_urls(),
        ]

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "can_issue": self.has_issue_permission(request)}
        return super().changelist_view(request, extra_context)

    @method_decorator(never_cache)
    def issue_view(self, request):
        """Issue client credentials; the secret is shown on this one answer only."""
        if not self.has_issue_permission(request):
            raise PermissionDenied
        form = PartnerKeyIssueForm(request.POST or None)
        issued = None
        if request.method == "POST" and form.is_valid():
            try:
                issued = services.partner_key_issue(
                    partner=form.cleaned_data["partner"],
                    scopes=form.cleaned_data["scopes"],
                    expires_at=timezone.now() + timedelta(days=form.cleaned_data["valid_days"]),
                    actor=request.user,
                )
            except DomainError as exc:
                form.add_error(None, str(exc.message))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": _("Issue a partner API key"),
            "form": form,
            "issued": issued,
        }
        return TemplateResponse(request, "admin/reporting/partnerapikey/issue.html", context)

    @admin.action(description=_("Revoke selected keys"), permissions=["revoke"])
    def revoke(self, request, queryset):
        run_service_action(
            self,
            request,
            queryset,
            lambda key: services.partner_key_revoke(
                key=key, actor=request.user, reason=gettext("revoked in the admin")
            ),
            done_message=lambda count: (
                ngettext("%(count)d key revoked.", "%(count)d keys revoked.", count)
                % {"count": count}
            ),
        )
