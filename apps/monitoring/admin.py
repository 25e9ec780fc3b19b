"""The security administrator's monitoring pages: rules (thresholds with change history),
alerts (evidence in the audit trail, acknowledge / resolve / note), automatic responses (with
reversal) and an overview page. Every change goes through a service, which audits it."""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.decorators import method_decorator
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from django.views.decorators.cache import never_cache

from apps.common.admin import ReadOnlyAdminMixin, ReadOnlyTabularInline
from apps.common.exceptions import DomainError

from . import selectors, services
from .forms import AlertActionForm, ReverseResponseForm, RuleForm
from .models import (
    Alert,
    AlertStatusChange,
    AutomaticResponse,
    MonitoringRule,
    MonitoringRuleChange,
)


class RuleChangeInline(ReadOnlyTabularInline):
    model = MonitoringRuleChange
    fields = ("at", "actor", "reason", "before", "after")
    readonly_fields = fields
    verbose_name_plural = _("Change history")


@admin.register(MonitoringRule)
class MonitoringRuleAdmin(admin.ModelAdmin):
    form = RuleForm
    list_display = (
        "code",
        "enabled",
        "severity",
        "threshold",
        "window_minutes",
        "response",
        "notify",
        "updated_at",
        "updated_by",
    )
    list_filter = ("enabled", "severity", "response")
    readonly_fields = ("code", "updated_at", "updated_by")
    fields = (
        "code",
        "enabled",
        "severity",
        "threshold",
        "window_minutes",
        "params",
        "response",
        "notify",
        "change_reason",
        "updated_at",
        "updated_by",
    )
    inlines = [RuleChangeInline]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        values = {name: form.cleaned_data[name] for name in services.RULE_FIELDS}
        values["params"] = values["params"] or {}
        services.rule_update(
            rule=obj, actor=request.user, values=values, reason=form.cleaned_data["change_reason"]
        )


class AlertHistoryInline(ReadOnlyTabularInline):
    model = AlertStatusChange
    fields = ("at", "from_status", "to_status", "actor", "note")
    readonly_fields = fields


@admin.register(Alert)
class AlertAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "id",
        "title",
        "severity",
        "status",
        "rule",
        "source_ip",
        "occurrences",
        "created_at",
        "last_seen_at",
    )
    list_filter = ("status", "severity", "rule")
    search_fields = ("=subject_id", "=source_ip", "title")
    date_hierarchy = "created_at"
    change_list_template = "admin/monitoring/alert/change_list.html"

    def get_urls(self):
        return [
            path(
                "overview/",
                self.admin_site.admin_view(self.overview_view),
                name="monitoring_overview",
            ),
            path(
                "<int:object_id>/detail/",
                self.admin_site.admin_view(self.detail_view),
                name="monitoring_alert_detail",
            ),
            *super().get_urls(),
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        return HttpResponseRedirect(reverse("admin:monitoring_alert_detail", args=[int(object_id)]))

    def _can(self, request, perm: str) -> bool:
        return request.user.has_perm(f"monitoring.{perm}")

    @method_decorator(never_cache)
    def overview_view(self, request):
        if not self.has_view_permission(request):
            raise PermissionDenied
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": _("Security monitoring"),
            **selectors.monitoring_overview(),
        }
        return TemplateResponse(request, "admin/monitoring/overview.html", context)

    @method_decorator(never_cache)
    def detail_view(self, request, object_id):
        if not self.has_view_permission(request):
            raise PermissionDenied
        alert = Alert.objects.select_related("rule").filter(pk=object_id).first()
        if alert is None:
            raise Http404
        action_form = AlertActionForm(prefix="act")
        reverse_form = ReverseResponseForm(prefix="rev")
        if request.method == "POST":
            try:
                if "act-action" in request.POST:
                    action_form = AlertActionForm(request.POST, prefix="act")
                    if action_form.is_valid():
                        self._act(request, alert, action_form.cleaned_data)
                        return HttpResponseRedirect(request.path)
                elif "rev-response_id" in request.POST:
                    reverse_form = ReverseResponseForm(request.POST, prefix="rev")
                    if reverse_form.is_valid():
                        response = AutomaticResponse.objects.get(
                            pk=reverse_form.cleaned_data["response_id"], alert=alert
                        )
                        services.response_reverse(
                            response=response,
                            actor=request.user,
                            note=reverse_form.cleaned_data["note"],
                        )
                        messages.success(request, gettext("The response was reversed."))
                        return HttpResponseRedirect(request.path)
            except DomainError as exc:
                if exc.status_code == 403:
                    raise PermissionDenied from exc
                messages.error(request, str(exc.message))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "original": alert,
            "title": alert.title,
            "alert": alert,
            "evidence": selectors.alert_evidence(alert),
            "history": list(alert.history.select_related("actor")),
            "responses": list(alert.responses.all()),
            "action_form": action_form,
            "reverse_form": reverse_form,
            "can_manage": self._can(request, "manage_alert"),
            "can_reverse": self._can(request, "reverse_response"),
        }
        return TemplateResponse(request, "admin/monitoring/alert/detail.html", context)

    def _act(self, request, alert, data):
        note = data.get("note") or ""
        if data["action"] == "acknowledge":
            services.alert_acknowledge(alert=alert, actor=request.user, note=note)
            messages.success(request, gettext("The alert was acknowledged."))
        elif data["action"] == "resolve":
            services.alert_resolve(alert=alert, actor=request.user, note=note)
            messages.success(request, gettext("The alert was resolved."))
        else:
            services.alert_add_note(alert=alert, actor=request.user, note=note)
            messages.success(request, gettext("The note was added."))


@admin.register(AutomaticResponse)
class AutomaticResponseAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "id",
        "kind",
        "status",
        "target_repr",
        "alert",
        "taken_at",
        "expires_at",
        "reversed_by",
    )
    list_filter = ("status", "kind")
    search_fields = ("=target_id",)
