"""Import of 12345 city-hotline tickets from the hotline's CSV export.

Each row becomes a case through `case_open` (channel `hotline`) in its own transaction, so the
good rows land whatever the bad ones do. A ticket number already imported is skipped (the import
is idempotent: run the same file twice, get the cases once). Bad rows are reported with their
line number (the header is line 1, as in a spreadsheet) and a stable code.

Columns (UTF-8, with or without a byte-order mark; English or Chinese headers):

| column          | 中文      | required | meaning                                              |
|-----------------|-----------|----------|------------------------------------------------------|
| ticket          | 工单号    | yes      | the hotline's ticket number (unique)                 |
| received_at     | 受理时间  | yes      | `YYYY-MM-DD HH:MM[:SS]`, Beijing time: the SLA start |
| caller_name     | 来电人    | no       | stored encrypted                                     |
| caller_phone    | 来电号码  | yes      | mobile or landline; stored encrypted + blind index   |
| category        | 分类      | yes      | a case category code                                 |
| subject         | 标题      | yes      |                                                      |
| description     | 内容      | no       |                                                      |
| merchant_uscc   | 商户信用代码 | no    | links a registered merchant                          |
| merchant_name   | 商户名称  | no       | the merchant as the caller named it                  |
| invoice_number  | 发票号码  | no       | links the submitted invoice with this number         |
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import datetime

from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from apps.audit.models import AuditCategory
from apps.audit.services import audit_record
from apps.common.exceptions import DomainError

from .choices import CaseChannel
from .exceptions import CaseError
from .models import Case, CaseCategory

COLUMNS = (
    "ticket",
    "received_at",
    "caller_name",
    "caller_phone",
    "category",
    "subject",
    "description",
    "merchant_uscc",
    "merchant_name",
    "invoice_number",
)
REQUIRED = ("ticket", "received_at", "caller_phone", "category", "subject")
ALIASES = {
    "工单号": "ticket",
    "工单编号": "ticket",
    "受理时间": "received_at",
    "来电时间": "received_at",
    "来电人": "caller_name",
    "来电人姓名": "caller_name",
    "来电号码": "caller_phone",
    "联系电话": "caller_phone",
    "分类": "category",
    "分类代码": "category",
    "标题": "subject",
    "内容": "description",
    "诉求内容": "description",
    "商户信用代码": "merchant_uscc",
    "统一社会信用代码": "merchant_uscc",
    "商户名称": "merchant_name",
    "发票号码": "invoice_number",
}
MAX_ROWS = 20_000
MAX_BYTES = 10 * 1024 * 1024
TIME_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y/%m/%d %H:%M:%S", "%Y/%m/%d %H:%M")


@dataclass(frozen=True)
class RowProblem:
    line: int
    code: str
    message: str


@dataclass
class HotlineImportReport:
    rows: int = 0
    created: list[str] = field(default_factory=list)  # case references
    skipped: list[str] = field(default_factory=list)  # ticket numbers already imported
    problems: list[RowProblem] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "rows": self.rows,
            "created": len(self.created),
            "skipped": len(self.skipped),
            "refused": len(self.problems),
            "refused_lines": [p.line for p in self.problems[:200]],
        }


def _parse_time(value: str) -> datetime:
    for fmt in TIME_FORMATS:
        try:
            naive = datetime.strptime(value.strip(), fmt)
        except ValueError:
            continue
        return timezone.make_aware(naive)
    raise CaseError(
        "hotline.bad_time",
        _("The reception time must look like 2026-03-02 09:30."),
        detail={"field": "received_at"},
    )


def _decode(data: bytes) -> str:
    if len(data) > MAX_BYTES:
        raise CaseError("hotline.file_unreadable", detail={"max_bytes": MAX_BYTES})
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise CaseError("hotline.file_unreadable") from None


def _open_row(row: dict, *, actor, categories: dict[str, CaseCategory]) -> Case:
    from apps.invoices.models import Invoice
    from apps.merchants.models import Merchant

    from .services import case_open

    for name in REQUIRED:
        if not row.get(name):
            raise CaseError(
                "hotline.missing_value",
                _("A required value is missing: %(column)s.") % {"column": name},
                detail={"field": name},
            )
    category = categories.get(row["category"])
    if category is None:
        raise CaseError("case.category_invalid", detail={"field": "category"})
    merchant = invoice = None
    if row.get("merchant_uscc"):
        merchant = Merchant.objects.filter(uscc=row["merchant_uscc"].upper()).first()
        if merchant is None:
            raise CaseError("case.link_not_found", detail={"field": "merchant_uscc"})
    if row.get("invoice_number"):
        invoice = (
            Invoice.objects.filter(number=row["invoice_number"]).order_by("-submitted_at").first()
        )
        if invoice is None:
            raise CaseError("case.link_not_found", detail={"field": "invoice_number"})
    return case_open(
        kind=category.kind,
        category=category,
        channel=CaseChannel.HOTLINE,
        actor=actor,
        subject=row["subject"],
        description=row.get("description", ""),
        caller_name=row.get("caller_name", ""),
        caller_phone=row["caller_phone"],
        hotline_ticket=row["ticket"],
        opened_at=_parse_time(row["received_at"]),
        merchant=merchant,
        reported_merchant_name=row.get("merchant_name", ""),
        invoice=invoice,
    )


def hotline_import(*, data: bytes, actor, file_name: str = "") -> HotlineImportReport:
    """Import a hotline CSV export (see the module docstring). Returns what happened per line;
    a file that cannot be read at all raises `CaseError`."""
    text = _decode(data)
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except (StopIteration, csv.Error):
        raise CaseError("hotline.file_unreadable") from None
    names = [ALIASES.get(h.strip(), h.strip().lower()) for h in header]
    missing = [c for c in REQUIRED if c not in names]
    if missing:
        raise CaseError("hotline.missing_columns", detail={"missing": missing})
    categories = {c.code: c for c in CaseCategory.objects.filter(active=True)}
    report = HotlineImportReport()
    line = 1
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            line += 1
            report.problems.append(RowProblem(line, "hotline.bad_row", str(exc)))
            continue
        line = reader.line_num
        if not any(c.strip() for c in cells):
            continue
        report.rows += 1
        if report.rows > MAX_ROWS:
            report.problems.append(
                RowProblem(line, "hotline.too_many_rows", str(_("Too many rows; stopped here.")))
            )
            break
        if len(cells) != len(names):
            report.problems.append(
                RowProblem(
                    line,
                    "hotline.bad_row",
                    str(_("The row has %(got)d cells, the header %(want)d."))
                    % {"got": len(cells), "want": len(names)},
                )
            )
            continue
        row = {name: cell.strip() for name, cell in zip(names, cells, strict=True)}
        ticket = row.get("ticket", "")
        if ticket and Case.objects.filter(hotline_ticket=ticket).exists():
            report.skipped.append(ticket)
            continue
        try:
            case = _open_row(row, actor=actor, categories=categories)
        except DomainError as exc:
            if exc.code == "case.hotline_ticket_taken":
                report.skipped.append(ticket)
                continue
            report.problems.append(RowProblem(line, exc.code, str(exc.message)))
            continue
        report.created.append(case.reference)
    audit_record(
        action="case.hotline_imported",
        category=AuditCategory.STATE,
        actor=actor,
        target_type="complaints.case",
        target_repr=file_name[:200],
        after={"file_name": file_name, **report.as_dict()},
    )
    return report
