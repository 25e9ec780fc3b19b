"""Admin of the tax-authority feed: upload a file, watch the import, download its error report.

- Upload (`invoices.add_feedimport`): the add form takes one CSV file, stores it under
  MEDIA_ROOT/feeds/ and queues `import_tax_feed_task` once the upload is committed.
- Watch (`invoices.view_feedimport`): the list and the detail page show status, progress and
  counters, refreshing themselves while an import runs.
- Errors: the detail page previews the first errors; the whole report downloads as CSV (line,
  column, code, message, raw row). Raw rows are shown with the buyer's name masked, and every
  cell is neutralised against spreadsheet formula injection. Downloads are audited.

Imports are facts: nobody changes or deletes one here.
"""

from __future__ import annotations

import csv
import io
from pathlib import PurePath

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import StreamingHttpResponse
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from apps.audit.models import AuditCategory
from apps.audit.services import audit_record
from apps.common.admin import UNREADABLE
from apps.common.crypto import DecryptionError
from apps.common.exports import safe_cell
from apps.common.masking import mask_name

from .feed import BUYER_NAME_COLUMN
from .models import FeedImport, FeedImportError, FeedImportStatus

PREVIEW_ERRORS = 50
ACTIVE = (FeedImportStatus.QUEUED, FeedImportStatus.RUNNING)
ERROR_COLUMNS = ("line", "column", "code", "message", "raw_row")


def masked_raw_row(error: FeedImportError, columns: list[str]) -> str:
    """The raw row with the buyer's name masked.

    When the row splits into the header's columns, only the buyer-name field is masked; when it
    does not (a malformed row), any field may be the name, so every field holding non-ASCII
    text is masked.
    """
    try:
        raw = error.raw_row
    except DecryptionError:
        return str(UNREADABLE)
    if not raw:
        return ""
    try:
        fields = next(csv.reader(io.StringIO(raw), strict=False))
    except (csv.Error, StopIteration):
        fields = [raw]
    if len(fields) == len(columns) and BUYER_NAME_COLUMN in columns:
        index = columns.index(BUYER_NAME_COLUMN)
        fields[index] = mask_name(fields[index])
    else:
        fields = [f if f.isascii() else mask_name(f) for f in fields]
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerow(fields)
    return out.getvalue()[:-2]


class FeedUploadForm(forms.ModelForm):
    class Meta:
        model = FeedImport
        fields = ("file",)
        help_texts = {
            "file": _(
                "A UTF-8 CSV file in the tax-authority feed format (see docs/formats.md). "
                "It is imported in the background; this page shows its progress."
            )
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["file"].required = True
        self.fields["file"].widget.attrs["accept"] = ".csv,text/csv"

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if PurePath(upload.name).suffix.lower() not in (".csv", ".txt"):
            raise forms.ValidationError(_("Upload a .csv file."), code="feed.not_csv")
        return upload


class _Echo:
    """A file-like object whose write() returns the line, for streaming CSV."""

    def write(self, value):
        return value


@admin.register(FeedImport)
class FeedImportAdmin(admin.ModelAdmin):
    """Upload a feed file; follow its import; read its errors. Never edited, never deleted."""

    list_display = (
        "file_name",
        "status",
        "progress_bar",
        "total_rows",
        "inserted",
        "updated",
        "unchanged",
        "red_applied",
        "entries_withdrawn",
        "error_rows",
        "uploaded_by",
        "created_at",
    )
    list_filter = ("status",)
    list_select_related = ("uploaded_by",)
    search_fields = ("file_name",)
    date_hierarchy = None
    ordering = ("-created_at",)
    readonly_fields = (
        "file_name",
        "status",
        "progress_bar",
        "rate",
        "uploaded_by",
        "created_at",
        "started_at",
        "finished_at",
        "total_rows",
        "inserted",
        "updated",
        "unchanged",
        "red_applied",
        "entries_withdrawn",
        "error_rows",
        "error_message",
        "error_report",
    )
    fieldsets = (
        (None, {"fields": ("file_name", "status", "progress_bar", "rate", "uploaded_by")}),
        (_("Times"), {"fields": ("created_at", "started_at", "finished_at")}),
        (
            _("Counters"),
            {
                "fields": (
                    "total_rows",
                    "inserted",
                    "updated",
                    "unchanged",
                    "red_applied",
                    "entries_withdrawn",
                    "error_rows",
                )
            },
        ),
        (_("Errors"), {"fields": ("error_message", "error_report")}),
    )
    add_form = FeedUploadForm
    add_fieldsets = ((None, {"fields": ("file",)}),)

    # --- permissions: upload is "add", everything else is "view" ---------------------------

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    # --- the upload form ----------------------------------------------------------------

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = self.add_form
            kwargs["fields"] = ("file",)
        return super().get_form(request, obj, **kwargs)

    def get_fieldsets(self, request, obj=None):
        return self.add_fieldsets if obj is None else super().get_fieldsets(request, obj)

    def get_readonly_fields(self, request, obj=None):
        return () if obj is None else self.readonly_fields

    def save_model(self, request, obj, form, change):
        if change:  # pragma: no cover - there is no change permission
            raise PermissionDenied
        upload = form.cleaned_data["file"]
        obj.file_name = PurePath(upload.name).name[:300]
        obj.uploaded_by = request.user
        obj.bytes_total = upload.size or 0
        obj.status = FeedImportStatus.QUEUED
        super().save_model(request, obj, form, change)
        audit_record(
            action="feed.uploaded",
            category=AuditCategory.STATE,
            target=obj,
            actor=request.user,
            after={"file_name": obj.file_name, "bytes": obj.bytes_total},
        )
        from .tasks import feed_import_enqueue

        feed_import_id = obj.pk
        # Never raises: with the broker down the upload stays queued for the sweep to send.
        transaction.on_commit(lambda: feed_import_enqueue(feed_import_id))

    def response_add(self, request, obj, post_url_continue=None):
        self.message_user(
            request,
            gettext("The file is queued for import; this page shows its progress."),
            messages.SUCCESS,
        )
        return super().response_add(
            request, obj, post_url_continue=reverse(self._url_name("change"), args=[obj.pk])
        )

    def _url_name(self, view: str) -> str:
        return f"admin:{self.opts.app_label}_{self.opts.model_name}_{view}"

    # --- progress and counters ----------------------------------------------------------

    @admin.display(description=_("progress"))
    def progress_bar(self, obj):
        phase = obj.get_status_display()
        if obj.status == FeedImportStatus.RUNNING and obj.phase:
            phase = f"{phase} · {obj.phase}"
        return format_html(
            '<progress value="{}" max="100">{}%</progress> {}% {}',
            obj.progress,
            obj.progress,
            obj.progress,
            phase,
        )

    @admin.display(description=_("rows per second"))
    def rate(self, obj):
        if not obj.started_at:
            return self.get_empty_value_display()
        end = obj.finished_at or timezone.now()
        seconds = max((end - obj.started_at).total_seconds(), 0.001)
        return f"{obj.total_rows / seconds:,.0f} ({seconds:,.1f} s)"

    @admin.display(description=_("error report"))
    def error_report(self, obj):
        errors = list(obj.errors.order_by("line", "id")[:PREVIEW_ERRORS])
        if not errors:
            return self.get_empty_value_display()
        url = reverse(self._url_name("errors"), args=[obj.pk])
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td><code>{}</code></td><td>{}</td><td><code>{}</code>"
            "</td></tr>",
            ((e.line, e.column, e.code, e.message, masked_raw_row(e, obj.columns)) for e in errors),
        )
        heading = format_html(
            "<tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr>",
            gettext("Line"),
            gettext("Column"),
            gettext("Code"),
            gettext("Message"),
            gettext("Raw row (buyer name masked)"),
        )
        return format_html(
            '<p><a class="button" href="{}">{}</a> {}</p><table>{}{}</table>',
            url,
            gettext("Download all errors (CSV)"),
            gettext("The first %(count)d errors:") % {"count": len(errors)},
            heading,
            rows,
        )

    # --- the error report download ------------------------------------------------------

    def get_urls(self):
        urls = [
            path(
                "<int:pk>/errors.csv",
                self.admin_site.admin_view(self.errors_csv),
                name=f"{self.opts.app_label}_{self.opts.model_name}_errors",
            )
        ]
        return urls + super().get_urls()

    def errors_csv(self, request, pk: int):
        if not self.has_view_permission(request):
            raise PermissionDenied
        feed_import = get_object_or_404(FeedImport, pk=pk)
        errors = feed_import.errors.order_by("line", "id")
        audit_record(
            action="feed.errors_exported",
            category=AuditCategory.EXPORT,
            target=feed_import,
            actor=request.user,
            after={"rows": feed_import.error_rows},
        )
        writer = csv.writer(_Echo())
        columns = feed_import.columns

        def lines():
            yield "\ufeff"  # Excel opens UTF-8 CSV correctly with a BOM
            yield writer.writerow(ERROR_COLUMNS)
            for error in errors.iterator(chunk_size=2000):
                values = (
                    error.line,
                    error.column,
                    error.code,
                    error.message,
                    masked_raw_row(error, columns),
                )
                yield writer.writerow([safe_cell(v) for v in values])

        response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
        # An ASCII name: the uploaded file's own name may be Chinese.
        filename = f"feed-{feed_import.pk}-errors.csv"
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        return response

    # --- pages refresh themselves while an import runs ------------------------------------

    def changelist_view(self, request, extra_context=None):
        busy = FeedImport.objects.filter(status__in=ACTIVE).exists()
        return super().changelist_view(request, {**(extra_context or {}), "refresh": busy})

    def change_view(self, request, object_id, form_url="", extra_context=None):
        busy = FeedImport.objects.filter(pk=object_id, status__in=ACTIVE).exists()
        return super().change_view(
            request, object_id, form_url, {**(extra_context or {}), "refresh": busy}
        )
