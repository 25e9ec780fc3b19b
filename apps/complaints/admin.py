"""Back office of consultations and complaints: configuration (queues and their members,
categories with their SLAs, the working calendar and hours, canned replies, FAQ articles) and a
read-only, scoped view of cases. Work on cases happens in the case desk (`views.py`), reached
from the admin index ("Case desk") and from every case's page here.
"""

from __future__ import annotations

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from apps.audit.models import AuditCategory
from apps.audit.services import audit_record
from apps.common.admin import (
    PersonalDataAdminMixin,
    ReadOnlyAdminMixin,
    ReadOnlyTabularInline,
    masked_display,
)
from apps.common.import_export import AuditedImportExportMixin
from apps.common.masking import mask_name, mask_phone

from . import selectors
from .models import (
    CannedReply,
    Case,
    CaseAttachment,
    CaseCategory,
    CaseDesk,
    CaseMessage,
    CaseQueue,
    CaseQueueMembership,
    CaseSettings,
    CaseStatusChange,
    FaqArticle,
    WorkCalendarDay,
)
from .resources import CaseCategoryResource


class ConfigAuditMixin:
    """Configuration edits are audited (who changed which fields, to what)."""

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        audit_record(
            action=f"{obj._meta.model_name}.{'changed' if change else 'added'}",
            category=AuditCategory.CONFIG,
            target=obj,
            actor=request.user,
            after={name: str(form.cleaned_data.get(name)) for name in form.changed_data},
        )

    def delete_model(self, request, obj):
        audit_record(
            action=f"{obj._meta.model_name}.deleted",
            category=AuditCategory.CONFIG,
            target=obj,
            actor=request.user,
        )
        super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        for obj in queryset:
            self.delete_model(request, obj)

    def save_formset(self, request, form, formset, change):
        super().save_formset(request, form, formset, change)
        if formset.has_changed():
            audit_record(
                action=f"{formset.model._meta.model_name}.changed",
                category=AuditCategory.CONFIG,
                target=form.instance,
                actor=request.user,
                after={
                    "added": [str(o) for o in formset.new_objects],
                    "changed": [str(o) for o, _fields in formset.changed_objects],
                    "deleted": [str(o) for o in formset.deleted_objects],
                },
            )


@admin.register(CaseSettings)
class CaseSettingsAdmin(ConfigAuditMixin, admin.ModelAdmin):
    list_display = (
        "__str__",
        "workday_start",
        "workday_end",
        "break_start",
        "break_end",
        "timezone",
        "reopen_window_days",
        "warning_hours",
    )
    fieldsets = (
        (
            _("Working hours (SLA clocks)"),
            {"fields": ("workday_start", "workday_end", "break_start", "break_end", "timezone")},
        ),
        (_("Workflow"), {"fields": ("reopen_window_days", "warning_hours", "reference_prefix")}),
        (_("Attachments"), {"fields": ("attachment_max_bytes", "attachments_per_case")}),
    )

    def has_add_permission(self, request):
        return super().has_add_permission(request) and not CaseSettings.objects.exists()

    def has_delete_permission(self, request, obj=None):
        return False

    def changelist_view(self, request, extra_context=None):
        # One row: go straight to it.
        CaseSettings.load()
        if self.has_view_or_change_permission(request):
            return HttpResponseRedirect(reverse("admin:complaints_casesettings_change", args=[1]))
        return super().changelist_view(request, extra_context)


@admin.register(WorkCalendarDay)
class WorkCalendarDayAdmin(ConfigAuditMixin, admin.ModelAdmin):
    list_display = ("date", "weekday", "is_workday", "note")
    list_filter = ("is_workday",)
    date_hierarchy = "date"
    search_fields = ("note",)
    ordering = ("date",)

    @admin.display(description=_("weekday"))
    def weekday(self, obj):
        return obj.date.strftime("%a")


class MembershipInline(admin.TabularInline):
    model = CaseQueueMembership
    extra = 1
    fields = ("user", "is_supervisor", "available", "last_assigned_at")
    readonly_fields = ("last_assigned_at",)
    autocomplete_fields = ()
    raw_id_fields = ("user",)


@admin.register(CaseQueue)
class CaseQueueAdmin(ConfigAuditMixin, admin.ModelAdmin):
    list_display = ("name", "code", "auto_assign", "active", "member_count")
    list_filter = ("active", "auto_assign")
    search_fields = ("name", "code")
    prepopulated_fields = {"code": ("name",)}
    inlines = [MembershipInline]

    def get_queryset(self, request):
        from django.db.models import Count

        return super().get_queryset(request).annotate(_members=Count("memberships"))

    @admin.display(description=_("members"), ordering="_members")
    def member_count(self, obj):
        return obj._members


@admin.register(CaseCategory)
class CaseCategoryAdmin(AuditedImportExportMixin, ConfigAuditMixin, admin.ModelAdmin):
    resource_classes = [CaseCategoryResource]
    list_display = (
        "name",
        "code",
        "kind",
        "queue",
        "default_priority",
        "first_response_hours",
        "resolution_days",
        "active",
    )
    list_filter = ("kind", "queue", "active")
    list_select_related = ("queue",)
    search_fields = ("name", "code")
    prepopulated_fields = {"code": ("name",)}


@admin.register(CannedReply)
class CannedReplyAdmin(ConfigAuditMixin, admin.ModelAdmin):
    list_display = ("title", "kind", "active", "updated_at")
    list_filter = ("kind", "active")
    search_fields = ("title", "body")


@admin.register(FaqArticle)
class FaqArticleAdmin(ConfigAuditMixin, admin.ModelAdmin):
    list_display = ("title", "slug", "category", "is_published", "published_at", "sort_order")
    list_filter = ("is_published", "category")
    list_select_related = ("category",)
    search_fields = ("title", "body", "slug")
    prepopulated_fields = {"slug": ("title",)}
    readonly_fields = ("published_at",)

    def save_model(self, request, obj, form, change):
        from django.utils import timezone

        if obj.is_published and obj.published_at is None:
            obj.published_at = timezone.now()
        elif not obj.is_published:
            obj.published_at = None
        super().save_model(request, obj, form, change)


# --- Cases (read-only, scoped) -----------------------------------------------------------------


class HistoryInline(ReadOnlyTabularInline):
    model = CaseStatusChange
    fields = ("created_at", "event", "from_status", "to_status", "assignee", "actor", "reason")
    readonly_fields = fields
    ordering = ("id",)

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("assignee", "actor")


class MessageInline(ReadOnlyTabularInline):
    model = CaseMessage
    fields = ("created_at", "kind", "author", "body", "article")
    readonly_fields = fields
    ordering = ("id",)

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("author", "article")


class AttachmentInline(ReadOnlyTabularInline):
    model = CaseAttachment
    fields = ("created_at", "download", "content_type", "size", "is_public", "uploaded_by")
    readonly_fields = fields
    ordering = ("id",)

    @admin.display(description=_("file"))
    def download(self, obj):
        return format_html(
            '<a href="{}">{}</a>',
            reverse("complaints:attachment", args=[obj.uid]),
            obj.original_name,
        )


@admin.register(Case)
class CaseAdmin(PersonalDataAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    """Cases as records: search and read (scoped like the desk); work happens in the desk."""

    personal_data_fields = ("caller_name", "caller_phone")
    masked_caller_name = masked_display(Case, "caller_name", mask_name)
    masked_caller_phone = masked_display(Case, "caller_phone", mask_phone)
    list_display = (
        "reference",
        "subject",
        "kind",
        "status",
        "priority",
        "queue",
        "assignee",
        "opened_at",
        "resolution_due",
        "escalated",
    )
    list_filter = ("status", "kind", "channel", "queue", "escalated", "substantiated")
    list_select_related = ("queue", "assignee")
    search_fields = ("=reference", "=hotline_ticket", "subject")
    show_full_result_count = False
    readonly_fields = (
        "desk_link",
        "reference",
        "kind",
        "channel",
        "status",
        "priority",
        "category",
        "queue",
        "assignee",
        "subject",
        "description",
        "consumer",
        "masked_caller_name",
        "masked_caller_phone",
        "hotline_ticket",
        "invoice",
        "award",
        "payout",
        "merchant",
        "reported_merchant_name",
        "draw",
        "opened_at",
        "first_response_due",
        "first_responded_at",
        "resolution_due",
        "resolved_at",
        "closed_at",
        "escalated",
        "escalated_at",
        "escalation_reason",
        "outcome",
        "substantiated",
        "resolution_summary",
        "rating",
        "rating_comment",
    )
    fields = readonly_fields
    inlines = [HistoryInline, MessageInline, AttachmentInline]

    def get_queryset(self, request):
        return selectors.case_list_visible(user=request.user)

    @admin.display(description=_("case desk"))
    def desk_link(self, obj):
        return format_html(
            '<a class="button" href="{}">{}</a>',
            reverse("complaints:case_detail", args=[obj.reference]),
            _("Work on it in the case desk"),
        )


@admin.register(CaseDesk)
class CaseDeskAdmin(admin.ModelAdmin):
    """The admin index's entry to the case desk (the desk's own pages do the work)."""

    actions = None

    def _allowed(self, request) -> bool:
        return selectors.may_use_desk(request.user)

    def has_module_permission(self, request):
        return self._allowed(request)

    def has_view_permission(self, request, obj=None):
        return self._allowed(request)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_model_perms(self, request):
        return {"view": self._allowed(request)}

    def changelist_view(self, request, extra_context=None):
        if not self._allowed(request):
            raise PermissionDenied
        return HttpResponseRedirect(reverse("complaints:mine"))
