"""django-import-export, the house way: imports through services, exports masked and audited.

Imports (`ServiceImportResourceMixin` for resources, `ServiceImportAdminMixin` for ModelAdmins):

- Every row goes through one service call — the same validation and audit as any other write —
  never through `instance.save()` or `bulk_create` (`use_bulk` is refused). The dry run calls the
  service's preview, which validates and says what would change but writes nothing and takes no
  lock; the confirmed run calls the service itself, one transaction per row.
- A row the service refuses is a validation error of that row (reported with its line number:
  the header is line 1, as in a spreadsheet) and the other rows still land: the confirm step is
  offered as long as at least one row is valid, and the result page and message list the
  refused lines again. A row that would change nothing is reported as skipped.
- The import itself is audited once (`<entity>.imported`: file, counts, refused lines); each
  created or changed row has the service's own entry.
- Only users who may both add and change the model import (`IMPORT_EXPORT_IMPORT_PERMISSION_CODE`
  is "add"; "change" is required here as well), so the button appears only for them.

Exports (`MaskedResourceMixin` for resources, `AuditedMaskedExportMixin` for ModelAdmins):

- CSV (UTF-8 with a byte-order mark, for Excel) or XLSX, written row by row from a chunked
  `.iterator()` into a temporary file (XLSX through openpyxl's write-only mode), so a large
  export holds one chunk of rows in memory, not the whole table.
- Personal-data columns (`personal_data_fields`) are masked unless the user holds
  `accounts.reveal_personal_data`; every cell is neutralised against formula injection
  (`safe_cell`); decryption failures show as "(cannot decrypt)".
- Every export is audited once the file is complete and before it is sent: who, which model and
  resource, how many rows, the changelist filters, the columns, the format, and whether personal
  data went out unmasked (then in the "Personal data revealed" category).
"""

from __future__ import annotations

import copy
import csv
import io
import tempfile
import uuid
from collections.abc import Callable, Iterable, Iterator
from datetime import date, datetime
from decimal import Decimal

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_permission_codename
from django.core.exceptions import NON_FIELD_ERRORS, PermissionDenied, ValidationError
from django.http import FileResponse
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _
from import_export.admin import ExportMixin, ImportMixin
from import_export.fields import Field
from import_export.formats.base_formats import CSV, XLSX
from import_export.forms import ImportForm
from import_export.results import RowResult
from import_export.widgets import CharWidget, Widget
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

from apps.audit.models import AuditCategory
from apps.audit.services import audit_record

from .admin import UNREADABLE
from .crypto import DecryptionError
from .exceptions import DomainError
from .exports import safe_cell

#: The permission that lets a user see (and so export) personal data in full.
REVEAL_PERMISSION = "accounts.reveal_personal_data"
#: The formats offered for import and export, in this order.
FILE_FORMATS = (CSV, XLSX)
#: Refused lines listed in an import's audit entry and its message (the rest are counted).
MAX_LISTED_LINES = 200
MAX_MESSAGE_LINES = 20


def line_number(row_number: int) -> int:
    """import-export numbers data rows from 1; people count the header: spreadsheet rows."""
    return row_number + 1


# --- cells -----------------------------------------------------------------------------------


def export_cell(value: object) -> object:
    """One value as it goes into a file: local naive times (XLSX has no time zones), exact
    decimals, text without the control characters XLSX forbids and neutralised against
    formula injection. Numbers, dates and booleans stay typed, so `-5` is not prefixed."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        if timezone.is_aware(value):
            value = timezone.localtime(value)
        return value.replace(tzinfo=None, microsecond=0)
    if isinstance(value, (bool, int, float, Decimal, date)):
        return value
    if isinstance(value, uuid.UUID):
        return str(value)
    return safe_cell(ILLEGAL_CHARACTERS_RE.sub("", str(value)))  # str(): lazy labels too


def csv_cell(value: object) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def cell_text(value: object) -> str:
    """An imported cell as text: XLSX hands over `410105` as the number 410105 (or 410105.0),
    an empty cell as None."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


class TextWidget(CharWidget):
    """A column read as text whatever the spreadsheet typed it as (see `cell_text`)."""

    def clean(self, value, row=None, **kwargs):
        return cell_text(value)


# --- exports ---------------------------------------------------------------------------------


class NativeWidget(Widget):
    """Hands the value over as it is; `export_cell` turns it into a cell (typed numbers and
    dates in XLSX, local times)."""

    def render(self, value, obj=None, **kwargs):
        return value


class ChoiceLabelWidget(Widget):
    """A choice field's label instead of its value (`accepted` → `已受理`), translated once
    per export rather than per cell (`get_FOO_display` hashes the choices on every call)."""

    def __init__(self, choices):
        super().__init__(coerce_to_string=False)
        self.choices = choices
        self._labels: dict | None = None

    def __deepcopy__(self, memo):
        # Each resource instance (one per export) translates anew, in the request's language.
        return type(self)(self.choices)

    def render(self, value, obj=None, **kwargs):
        if self._labels is None:
            self._labels = {key: str(label) for key, label in self.choices}
        return self._labels.get(value, value)


def export_choice_column(attribute: str, model) -> Field:
    """An export-only column showing the label of `model`'s choice field `attribute`."""
    model_field = model._meta.get_field(attribute)
    return Field(
        attribute=attribute,
        column_name=model_field.verbose_name,
        widget=ChoiceLabelWidget(model_field.choices),
        readonly=True,
    )


def export_column(attribute: str, label=None, *, model=None) -> Field:
    """An export-only column headed `label` (may be lazy: translated when the file is written).
    Without a label, `attribute` is a field path from `model` and the label is the last
    field's `verbose_name`."""
    if label is None:
        target = model
        for part in attribute.split("__"):
            model_field = target._meta.get_field(part)
            target = model_field.related_model or target
        label = model_field.verbose_name
    return Field(attribute=attribute, column_name=label, widget=NativeWidget(), readonly=True)


class MaskedResourceMixin:
    """For export resources: personal data masked unless `reveal`, every cell made safe.

    Declare `personal_data_fields = {"field_name": mask_function}` (the functions of
    `apps.common.masking`), `export_select_related` for the relations the columns read, and
    `export_file_stem` for the file name. The admin mixin passes `reveal` from the user's
    permission; nothing else ever sets it.
    """

    personal_data_fields: dict[str, Callable[[str | None], str]] = {}
    export_select_related: tuple[str, ...] = ()
    export_file_stem: str = ""

    def __init__(self, *args, reveal: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.reveal = reveal
        self._names = {id(field): name for name, field in self.fields.items()}

    def get_field_name(self, field):
        return self._names.get(id(field)) or super().get_field_name(field)

    def export_field(self, field, instance, **kwargs):
        name = self.get_field_name(field)
        try:
            value = super().export_field(field, instance, **kwargs)
        except DecryptionError:
            return str(UNREADABLE)
        mask = self.personal_data_fields.get(name)
        if mask is not None and not self.reveal:
            value = mask("" if value is None else str(value))
        return export_cell(value)

    def export_queryset(self, queryset, **kwargs):
        """The queryset the file is written from: the resource's own filter, its relations."""
        queryset = self.filter_export(queryset, **kwargs)
        if self.export_select_related:
            queryset = queryset.select_related(*self.export_select_related)
        return queryset

    def export_rows(self, queryset, selected_fields=None) -> Iterator[list]:
        """Rows one by one from a chunked iterator (`IMPORT_EXPORT_CHUNK_SIZE` per query)."""
        for obj in self.iter_queryset(queryset):
            yield self.export_resource(obj, selected_fields=selected_fields, force_native_type=True)


def write_export_file(file_format, headers: list, rows: Iterable[list]):
    """Write `headers` and `rows` into a new temporary file; returns (file at 0, row count)."""
    # Handed to the response open, which closes it once sent (deleting it).
    tmp = tempfile.TemporaryFile()  # noqa: SIM115
    count = 0
    if isinstance(file_format, XLSX):
        from openpyxl import Workbook

        workbook = Workbook(write_only=True)  # rows go to disk as they are appended
        sheet = workbook.create_sheet()
        sheet.append([export_cell(h) for h in headers])
        for row in rows:
            sheet.append(row)
            count += 1
        workbook.save(tmp)
    else:
        text = io.TextIOWrapper(tmp, encoding="utf-8-sig", newline="")  # BOM: Excel reads UTF-8
        writer = csv.writer(text)
        writer.writerow([csv_cell(export_cell(h)) for h in headers])
        for row in rows:
            writer.writerow([csv_cell(v) for v in row])
            count += 1
        text.flush()
        text.detach()
    tmp.seek(0)
    return tmp, count


class FileFormatsMixin:
    """CSV and XLSX only, whatever the project-wide setting says."""

    def get_import_formats(self):
        return [f for f in FILE_FORMATS if f().can_import()]

    def get_export_formats(self):
        return [f for f in FILE_FORMATS if f().can_export()]


class AuditedMaskedExportMixin(FileFormatsMixin, ExportMixin):
    """ModelAdmin mixin: the Export button, for users with the model's view permission
    (`IMPORT_EXPORT_EXPORT_PERMISSION_CODE`), writing masked, formula-safe CSV or XLSX of the
    changelist's current filter, audited. Resources should use `MaskedResourceMixin`."""

    def can_reveal_personal_data(self, request) -> bool:
        return request.user.has_perm(REVEAL_PERMISSION)

    def get_export_resource_kwargs(self, request, **kwargs):
        return {"reveal": self.can_reveal_personal_data(request)}

    def get_export_filename(self, request, queryset, file_format, resource=None):
        stem = getattr(resource, "export_file_stem", "") or self.model._meta.model_name
        stamp = timezone.localtime().strftime("%Y%m%d-%H%M%S")
        return f"{stem}-{stamp}.{file_format.get_extension()}"

    def export_audit_filters(self, request) -> dict:
        """The changelist filters the export applied, as the URL carried them."""
        return {
            key: (values[0] if len(values) == 1 else values)[:500]
            for key, values in request.GET.lists()
        }

    def _do_file_export(self, file_format, request, queryset, export_form=None):
        if not self.has_export_permission(request):
            raise PermissionDenied
        resource_class = self.choose_export_resource_class(export_form, request)
        resource = resource_class(**self.get_export_resource_kwargs(request))
        selected = self.get_export_resource_fields_from_form(export_form)
        headers = resource.get_export_headers(selected_fields=selected)
        if hasattr(resource, "export_queryset"):
            queryset = resource.export_queryset(queryset)
            rows = resource.export_rows(queryset, selected_fields=selected)
        else:  # a plain resource: still chunked, still safe cells
            queryset = resource.filter_export(queryset)
            rows = (
                [
                    export_cell(v)
                    for v in resource.export_resource(obj, selected, force_native_type=True)
                ]
                for obj in resource.iter_queryset(queryset)
            )
        tmp, count = write_export_file(file_format, headers, rows)
        exported = {resource.get_field_name(f) for f in resource.get_export_fields(selected)}
        personal = exported & set(getattr(resource, "personal_data_fields", {}))
        revealed = bool(personal and resource.reveal)
        opts = self.model._meta
        audit_record(
            action="data.exported",
            category=AuditCategory.REVEAL if revealed else AuditCategory.EXPORT,
            actor=request.user,
            target_type=opts.label_lower,
            target_repr=str(resource.get_display_name()),
            after={
                "model": opts.label_lower,
                "resource": resource_class.__name__,
                "rows": count,
                "format": file_format.get_title(),
                "filters": self.export_audit_filters(request),
                "columns": headers,
                "personal_data": "revealed" if revealed else ("masked" if personal else "none"),
            },
        )
        content_type = file_format.get_content_type()
        if not file_format.is_binary():
            content_type += "; charset=utf-8"
        return FileResponse(
            tmp,
            as_attachment=True,
            filename=self.get_export_filename(request, queryset, file_format, resource),
            content_type=content_type,
        )


# --- imports ---------------------------------------------------------------------------------


def domain_error_to_validation_error(exc: DomainError, fields: Iterable[str]) -> ValidationError:
    """A service's refusal as import-export shows it: under the offending column if known."""
    field = exc.detail.get("field") if isinstance(exc.detail, dict) else None
    key = field if field in set(fields) else NON_FIELD_ERRORS
    return ValidationError({key: [ValidationError(str(exc.message), code=exc.code)]})


class ServiceImportResourceMixin:
    """For import resources whose rows are written by a service (see the module docstring).

    Subclasses implement `import_service(instance, row, *, dry_run, actor, source)`: call the
    service (or its preview when `dry_run`), update `instance` to show the outcome, and return
    "created", "updated" or "unchanged"; let `DomainError` propagate. They may declare
    `column_aliases` (e.g. Chinese headers → column names) and must set
    `import_audit_action` (e.g. "merchant.imported"). Meta should say `use_transactions =
    False` (each row is its own service transaction, so good rows land whatever the others do)
    and `clean_model_instances = False` (the service validates).
    """

    column_aliases: dict[str, str] = {}
    import_audit_action: str = ""
    max_import_rows: int = 50_000

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self._meta.use_bulk:
            raise TypeError(f"{type(self).__name__}: bulk imports would bypass the service")
        self._outcome: str | None = None
        self.current_instance = None

    def import_service(self, instance, row, *, dry_run: bool, actor, source: str) -> str:
        raise NotImplementedError

    def import_instance(self, instance, row, **kwargs):
        """Nothing: the service reads the row; `import_service` shows its outcome on
        `instance` (which the preview's diff compares with the stored row)."""

    def get_import_fields(self):
        # Export-only columns (`readonly`) are neither read nor listed on the import page.
        return [f for f in super().get_import_fields() if not f.readonly]

    def import_source(self, file_name: str | None, row_number: int) -> str:
        return gettext("import %(file)s, line %(line)d") % {
            "file": file_name or "-",
            "line": line_number(row_number),
        }

    def before_import(self, dataset, **kwargs):
        if len(dataset) > self.max_import_rows:
            raise ValidationError(
                gettext("The file has %(count)d rows; at most %(max)d can be imported at once.")
                % {"count": len(dataset), "max": self.max_import_rows}
            )
        aliases = {k.casefold(): v for k, v in self.column_aliases.items()}
        headers = []
        for header in dataset.headers or ():
            text = "" if header is None else str(header).strip()
            headers.append(aliases.get(text.casefold(), text))
        if dataset.headers:
            dataset.headers = headers
        super().before_import(dataset, **kwargs)

    def before_import_row(self, row, **kwargs):
        self._outcome = None
        self.current_instance = None
        super().before_import_row(row, **kwargs)

    def after_init_instance(self, instance, new, row, **kwargs):
        # The stored row as it was before the file's values are set on `instance`: an empty
        # cell means "keep the current value".
        self.current_instance = None if new else copy.copy(instance)
        super().after_init_instance(instance, new, row, **kwargs)

    def row_value(self, row, column: str, *, keep: str | None = None) -> str:
        """The cell `column` as text; missing or empty: the current value of the stored row
        (attribute `keep`, default the column's name) when there is one, else ""."""
        value = cell_text(row.get(column)).strip() if column in row else ""
        if value == "" and self.current_instance is not None:
            return getattr(self.current_instance, keep or column)
        return value

    def save_instance(self, instance, is_create, row, **kwargs):
        dry_run = self._is_dry_run(kwargs)
        try:
            self._outcome = self.import_service(
                instance,
                row,
                dry_run=dry_run,
                actor=kwargs.get("user"),
                source=self.import_source(kwargs.get("file_name"), kwargs.get("row_number", 0)),
            )
        except DomainError as exc:
            raise domain_error_to_validation_error(exc, self.fields) from exc

    def after_import_row(self, row, row_result, **kwargs):
        if self._outcome == "unchanged":
            row_result.import_type = RowResult.IMPORT_TYPE_SKIP
        elif self._outcome == "created":
            row_result.import_type = RowResult.IMPORT_TYPE_NEW
        elif self._outcome == "updated":
            row_result.import_type = RowResult.IMPORT_TYPE_UPDATE
        super().after_import_row(row, row_result, **kwargs)

    def after_import(self, dataset, result, **kwargs):
        # No call to ModelResource.after_import: rows never carry primary keys, so there is no
        # sequence to reset.
        if self._is_dry_run(kwargs):
            return
        totals = result.totals
        invalid = [line_number(row.number) for row in result.invalid_rows]
        failed = [line_number(row.number) for row in result.error_rows]
        opts = self._meta.model._meta
        audit_record(
            action=self.import_audit_action or f"{opts.model_name}.imported",
            category=AuditCategory.STATE,
            actor=kwargs.get("user"),
            target_type=opts.label_lower,
            target_repr=str(kwargs.get("file_name") or "")[:200],
            after={
                "file_name": kwargs.get("file_name") or "",
                "rows": result.total_rows,
                "created": totals[RowResult.IMPORT_TYPE_NEW],
                "updated": totals[RowResult.IMPORT_TYPE_UPDATE],
                "unchanged": totals[RowResult.IMPORT_TYPE_SKIP],
                "invalid": totals[RowResult.IMPORT_TYPE_INVALID],
                "failed": totals[RowResult.IMPORT_TYPE_ERROR],
                "invalid_lines": invalid[:MAX_LISTED_LINES],
                "failed_lines": failed[:MAX_LISTED_LINES],
            },
        )


class LimitedImportForm(ImportForm):
    """The upload form, with a size limit: the whole file is parsed in memory."""

    max_bytes = 10 * 1024 * 1024

    def clean_import_file(self):
        upload = self.cleaned_data["import_file"]
        if upload.size > self.max_bytes:
            raise forms.ValidationError(
                _("The file is larger than %(max)d MB.") % {"max": self.max_bytes // (1024 * 1024)}
            )
        return upload


class ServiceImportAdminMixin(FileFormatsMixin, ImportMixin):
    """ModelAdmin mixin: the Import button and its dry-run preview, for users who may both add
    and change the model; partially valid files can be confirmed (the valid rows land, the
    others are listed by line). Resources should use `ServiceImportResourceMixin`."""

    import_template_name = "admin/common/import.html"
    import_form_class = LimitedImportForm

    def has_import_permission(self, request):
        opts = self.opts
        codes = {"add", "change"}
        configured = getattr(settings, "IMPORT_EXPORT_IMPORT_PERMISSION_CODE", None)
        if configured:
            codes.add(configured)
        return all(
            request.user.has_perm(f"{opts.app_label}.{get_permission_codename(code, opts)}")
            for code in codes
        )

    def import_action(self, request, **kwargs):
        response = super().import_action(request, **kwargs)
        context = getattr(response, "context_data", None)
        if not isinstance(response, TemplateResponse) or context is None:
            return response
        result = context.get("result")
        if (
            result is not None
            and "confirm_form" not in context
            and not result.has_errors()
            and result.has_validation_errors()
            and result.valid_rows()
        ):
            # Refused rows are reported; the others may still go in.
            context["confirm_form"] = self.create_confirm_form(request, import_form=context["form"])
        return response

    def add_success_message(self, result, request):
        totals = result.totals
        messages.success(
            request,
            gettext(
                "Import finished: %(created)d created, %(updated)d updated, "
                "%(unchanged)d unchanged, %(invalid)d refused."
            )
            % {
                "created": totals[RowResult.IMPORT_TYPE_NEW],
                "updated": totals[RowResult.IMPORT_TYPE_UPDATE],
                "unchanged": totals[RowResult.IMPORT_TYPE_SKIP],
                "invalid": totals[RowResult.IMPORT_TYPE_INVALID]
                + totals[RowResult.IMPORT_TYPE_ERROR],
            },
        )
        problems = [
            (line_number(row.number), "; ".join(_messages_of(row.error)))
            for row in result.invalid_rows
        ] + [
            (line_number(row.number), "; ".join(str(e.error) for e in row.errors))
            for row in result.error_rows
        ]
        problems.sort()
        for line, text in problems[:MAX_MESSAGE_LINES]:
            messages.warning(
                request,
                gettext("Line %(line)d not imported: %(error)s") % {"line": line, "error": text},
            )
        if len(problems) > MAX_MESSAGE_LINES:
            rest = len(problems) - MAX_MESSAGE_LINES
            messages.warning(
                request,
                ngettext(
                    "%(count)d more line not imported.", "%(count)d more lines not imported.", rest
                )
                % {"count": rest},
            )


def _messages_of(error: ValidationError) -> list[str]:
    if hasattr(error, "error_dict"):
        return [
            f"{field}: {message}" if field != NON_FIELD_ERRORS else str(message)
            for field, errors in error.message_dict.items()
            for message in errors
        ]
    return [str(m) for m in error.messages]


class AuditedImportExportMixin(ServiceImportAdminMixin, AuditedMaskedExportMixin):
    """Both buttons: imports through services, masked and audited exports."""

    import_export_change_list_template = "admin/import_export/change_list_import_export.html"
