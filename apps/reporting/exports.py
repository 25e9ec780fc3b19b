"""CSV and XLSX files of one dashboard panel (the same `Table` the chart draws)."""

from __future__ import annotations

import csv
import io

from django.http import HttpResponse
from django.utils.translation import gettext

from apps.common.exports import safe_cell

from .selectors import SUPPRESSED, Table, small_cell_threshold

CSV_TYPE = "text/csv; charset=utf-8"
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _cells(table: Table) -> list[list]:
    hidden = f"<{small_cell_threshold()}"
    header = [str(label) for _key, label in table.columns]
    body = [
        [
            hidden if v is SUPPRESSED else safe_cell(str(v) if not isinstance(v, int) else v)
            for v in row
        ]
        for row in table.rows
    ]
    rows = [header, *body]
    if table.note:
        rows.append([str(table.note)])
    return rows


def as_csv(table: Table) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerows(_cells(table))
    # A BOM so that Excel opens UTF-8 Chinese correctly.
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")


def as_xlsx(table: Table) -> bytes:
    from openpyxl import Workbook

    book = Workbook(write_only=True)
    sheet = book.create_sheet(title=table.key[:31])
    for row in _cells(table):
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def response(table: Table, fmt: str, *, stamp: str) -> HttpResponse:
    name = f"{table.key}-{stamp}"
    if fmt == "xlsx":
        reply = HttpResponse(as_xlsx(table), content_type=XLSX_TYPE)
        name += ".xlsx"
    else:
        reply = HttpResponse(as_csv(table), content_type=CSV_TYPE)
        name += ".csv"
    reply["Content-Disposition"] = f'attachment; filename="{name}"'
    reply["Cache-Control"] = "no-store"
    return reply


def title_of(table: Table) -> str:
    return gettext("%(title)s (export)") % {"title": table.title}
