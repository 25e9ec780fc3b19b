"""The tax authority's issued-invoice feed: CSV in, `TaxInvoiceRecord` rows out (docs/formats.md).

`import_feed(feed_import)` runs one `FeedImport`. Invariants:

- **Nothing is lost.** Every data row either lands in the registry or is reported as a
  `FeedImportError` (line number, column, code, message, the raw row encrypted). A bad row never
  stops the import; only a file-level problem does (not UTF-8, header missing columns), and then
  nothing lands.
- **Idempotent.** Re-importing a file changes nothing: a row is written only when one of its
  facts differs from the registry (`last_synced_at` moves only then), so counters say
  "unchanged".
- **First wins.** A number repeated inside one file lands from its first valid line; the later
  lines are reported as `feed.duplicate_number`.
- **Red after blue.** A red invoice lands only if the blue invoice it reverses is in the
  registry or lands from the same file; then `apps.invoices.reversals` recomputes the blue
  record's red-flushed state and withdraws campaign entries.

Two paths with the same rules and the same error codes:

- PostgreSQL: the file is streamed (constant memory, any size) in 4 MiB blocks; Python only
  splits lines, checks UTF-8 and the column count, and prefixes the line number; `COPY` loads
  the raw text into a temporary staging table. One set-based statement then validates every
  column (`FIELD_CHECKS`, the SQL functions of migration 0004), computes the buyer-name blind
  index with pgcrypto's `hmac()` (key bound as a parameter, never stored) and ranks duplicates;
  its output is sorted by invoice number, so the upsert
  (`INSERT … ON CONFLICT (number) DO UPDATE … WHERE <a fact changed>`) walks the registry's
  unique index in order.
- SQLite (the embedded default): the same streaming reader, rules applied in Python
  (`check_row`), rows staged in a temporary table and written through the ORM. Slower, same
  results.

The buyer's name is only ever stored as its blind index; raw rows of bad lines are encrypted.
Nothing here logs a row.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import re
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from itertools import zip_longest
from typing import IO
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone, translation
from django.utils.translation import gettext_lazy as _

from apps.common import crypto
from apps.common.areas import PROVINCE_CODES
from apps.common.pii import normalize_for_index
from apps.merchants.validators import USCC_ALPHABET, uscc_check_character

from .choices import InvoiceType, IssuerKind, RegistryStatus
from .models import FeedImport, FeedImportError, FeedImportStatus, TaxInvoiceRecord

logger = logging.getLogger(__name__)

FEED_COLUMNS: tuple[str, ...] = (
    "number",
    "invoice_type",
    "issued_at",
    "seller_uscc",
    "seller_name",
    "buyer_name",
    "buyer_tax_id",
    "amount",
    "tax",
    "total",
    "issuer_kind",
    "industry_code",
    "area_code",
    "reverses_number",
)
BUYER_NAME_COLUMN = "buyer_name"
ISSUER_KINDS = {
    "self": IssuerKind.SELF.value,
    "自开": IssuerKind.SELF.value,
    "agent": IssuerKind.AGENT.value,
    "代开": IssuerKind.AGENT.value,
}
SELLER_NAME_MAX = 200
BUYER_NAME_MAX = 100
# A record may span lines only inside a quoted field; past these limits its first line is
# reported as malformed and reading resumes on the next line.
MAX_RECORD_LINES = 20
MAX_RECORD_BYTES = 64 * 1024
BLOCK_BYTES = 4 * 1024 * 1024
# A file whose first records are all undecodable is not a UTF-8 feed (typically GBK).
ENCODING_PROBE_RECORDS = 20
# How far past the import's start an issue time may lie (clock skew at the tax authority).
FUTURE_TOLERANCE = timedelta(minutes=10)
SHANGHAI = ZoneInfo("Asia/Shanghai")

# --- Error codes -------------------------------------------------------------------------------

ERROR_MESSAGES: dict[str, object] = {
    # file level
    "feed.empty_file": _("The file is empty: a feed starts with a header row."),
    "feed.not_utf8": _("The file is not UTF-8 text (it looks like another encoding, e.g. GBK)."),
    "feed.missing_columns": _("The header row lacks required columns: %(columns)s."),
    "feed.duplicate_columns": _("The header row names a column twice: %(columns)s."),
    "feed.unreadable": _("The file could not be read."),
    # row level, found while reading
    "feed.invalid_utf8": _("The row is not valid UTF-8 text."),
    "feed.column_count": _("The row has %(found)s columns; the header has %(expected)s."),
    "feed.malformed_row": _("The row is not well-formed CSV (quotes, line breaks or NUL bytes)."),
    # row level, one per column rule (FIELD_CHECKS)
    "feed.invalid_number": _(
        "The invoice number must be 20 digits starting with a valid year and province code."
    ),
    "feed.invalid_invoice_type": _("The invoice type must be 32, 31 or 00."),
    "feed.invalid_issued_at": _(
        "The issue time must be YYYY-MM-DD HH:MM:SS (China time) or ISO 8601 with an offset."
    ),
    "feed.issued_at_in_future": _("The issue time lies in the future."),
    "feed.invalid_uscc": _(
        "The seller's unified social credit code is not 18 valid characters with a correct "
        "check character."
    ),
    "feed.invalid_seller_name": _(
        "The seller's name is required, at most 200 characters, without control characters."
    ),
    "feed.invalid_buyer_name": _(
        "The buyer's name is at most 100 characters, without control characters."
    ),
    "feed.invalid_buyer_tax_id": _(
        "The buyer's tax ID is empty or 15 to 20 digits and capital letters."
    ),
    "feed.invalid_amount": _(
        "Amounts are plain decimals with at most 2 decimal places (a minus sign for red invoices)."
    ),
    "feed.total_mismatch": _("The total with tax is not the amount plus the tax."),
    "feed.amount_sign": _(
        "A blue invoice has a positive total; a red invoice (with reverses_number) has "
        "negative amounts."
    ),
    "feed.invalid_issuer_kind": _("The issuer kind must be self, agent, 自开 or 代开."),
    "feed.invalid_industry_code": _("The industry code is empty or 2 to 4 digits."),
    "feed.invalid_area_code": _("The area code is empty or 6 digits."),
    "feed.invalid_reverses_number": _(
        "The reversed invoice number must be a valid invoice number other than this one."
    ),
    # row level, found across rows
    "feed.duplicate_number": _("This invoice number already appeared on line %(first_line)s."),
    "feed.unknown_blue_invoice": _(
        "The blue invoice this red invoice reverses is neither in the registry nor in this file."
    ),
}


class FeedFileError(Exception):
    """A file-level problem: nothing is imported."""

    def __init__(self, code: str, **params):
        self.code = code
        self.params = params
        super().__init__(code)

    @property
    def message(self) -> str:
        return error_message(self.code, self.params)


def error_message(code: str, params: dict | None = None) -> str:
    text = str(ERROR_MESSAGES.get(code, code))
    return text % params if params else text


# --- Column rules, shared by both paths ------------------------------------------------------

# One bit per rule. The PostgreSQL path computes the same bit mask in SQL (`_sql_checks`), the
# SQLite path in Python (`check_row`); both are decoded by `decode_flags`.
FIELD_CHECKS: tuple[tuple[int, str, str], ...] = (
    (1 << 0, "number", "feed.invalid_number"),
    (1 << 1, "invoice_type", "feed.invalid_invoice_type"),
    (1 << 2, "issued_at", "feed.invalid_issued_at"),
    (1 << 3, "issued_at", "feed.issued_at_in_future"),
    (1 << 4, "seller_uscc", "feed.invalid_uscc"),
    (1 << 5, "seller_name", "feed.invalid_seller_name"),
    (1 << 6, "buyer_name", "feed.invalid_buyer_name"),
    (1 << 7, "buyer_tax_id", "feed.invalid_buyer_tax_id"),
    (1 << 8, "amount", "feed.invalid_amount"),
    (1 << 9, "tax", "feed.invalid_amount"),
    (1 << 10, "total", "feed.invalid_amount"),
    (1 << 11, "total", "feed.total_mismatch"),
    (1 << 12, "total", "feed.amount_sign"),
    (1 << 13, "issuer_kind", "feed.invalid_issuer_kind"),
    (1 << 14, "industry_code", "feed.invalid_industry_code"),
    (1 << 15, "area_code", "feed.invalid_area_code"),
    (1 << 16, "reverses_number", "feed.invalid_reverses_number"),
)
(
    B_NUMBER,
    B_TYPE,
    B_ISSUED,
    B_FUTURE,
    B_USCC,
    B_SELLER,
    B_BUYER,
    B_BUYER_TAX,
    B_AMOUNT,
    B_TAX,
    B_TOTAL,
    B_MISMATCH,
    B_SIGN,
    B_ISSUER,
    B_INDUSTRY,
    B_AREA,
    B_REVERSES,
) = (bit for bit, _col, _code in FIELD_CHECKS)


def decode_flags(flags: int) -> list[tuple[str, str]]:
    """The (column, code) pairs of a rule bit mask, in column order."""
    return [(column, code) for bit, column, code in FIELD_CHECKS if flags & bit]


NUMBER_RE = re.compile(r"[0-9]{20}")
AMOUNT_RE = re.compile(r"-?[0-9]+(?:\.[0-9]{1,2})?")
# numeric(14, 2): at most 12 digits before the point (leading zeros do not count).
AMOUNT_LIMIT = Decimal(10) ** 12
USCC_RE = re.compile(f"[{USCC_ALPHABET}]{{18}}")
BUYER_TAX_ID_RE = re.compile(r"[0-9A-Z]{15,20}")
INDUSTRY_RE = re.compile(r"[0-9]{2,4}")
AREA_RE = re.compile(r"[0-9]{6}")
CONTROL_RE = re.compile(r"[\x01-\x1f\x7f]")
ISSUED_AT_RE = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[ T]([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]{1,6})?"
    r"(Z|[+-][0-9]{2}:[0-9]{2})?"
)
# `apps.common.pii.normalize_name` in SQL: NFKC, one kind of middle dot, no whitespace. These
# are the characters `str.isspace()` accepts (NFKC folds most other spaces to U+0020).
NAME_DOTS = "•‧∙・.．"
PY_WHITESPACE = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005"
    "\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)


def number_ok(value: str, yy: str) -> bool:
    return bool(
        NUMBER_RE.fullmatch(value) and "21" <= value[:2] <= yy and value[2:4] in PROVINCE_CODES
    )


def uscc_ok(value: str) -> bool:
    return bool(USCC_RE.fullmatch(value)) and uscc_check_character(value[:17]) == value[17]


def parse_issued_at(value: str) -> datetime | None:
    """`YYYY-MM-DD[ T]HH:MM:SS[.ffffff][Z|±HH:MM]`, no offset meaning Asia/Shanghai; else None.

    The same rule as the SQL function `invoices_feed_timestamp` (migration 0004).
    """
    match = ISSUED_AT_RE.fullmatch(value)
    if not match:
        return None
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    fraction, offset = match.group(7), match.group(8)
    if not 2000 <= year <= 2099 or hour > 23 or minute > 59 or second > 59:
        return None
    if offset is None:
        tz = SHANGHAI
    elif offset == "Z":
        tz = UTC
    else:
        off_h, off_m = int(offset[1:3]), int(offset[4:6])
        if off_h > 14 or off_m > 59:
            return None
        sign = -1 if offset[0] == "-" else 1
        tz = timezone.get_fixed_timezone(sign * (off_h * 60 + off_m))
    micro = int((fraction[1:] + "000000")[:6]) if fraction else 0
    try:
        return datetime(year, month, day, hour, minute, second, micro, tzinfo=tz)
    except ValueError:  # month or day out of range
        return None


def parse_amount(value: str) -> Decimal | None:
    if not AMOUNT_RE.fullmatch(value):
        return None
    try:
        amount = Decimal(value)
    except InvalidOperation:  # pragma: no cover - the pattern admits only plain decimals
        return None
    return amount if abs(amount) < AMOUNT_LIMIT else None


def name_index(name: str, *, key: bytes | None = None) -> str:
    """The buyer-name blind index the registry stores ("" for no name)."""
    normalized = normalize_for_index("name", name)
    return crypto.blind_index("name", normalized, key=key) if normalized else ""


@dataclass
class RowContext:
    """What the rules depend on besides the row: fixed once per import."""

    yy: str  # the current two-digit year (Asia/Shanghai): numbers cannot come from the future
    not_after: datetime  # the latest acceptable issue time

    @classmethod
    def now(cls, at: datetime) -> RowContext:
        return cls(yy=f"{at.astimezone(SHANGHAI).year % 100:02d}", not_after=at + FUTURE_TOLERANCE)


@dataclass
class CheckedRow:
    flags: int
    number: str
    values: dict = field(default_factory=dict)

    @property
    def is_red(self) -> bool:
        return bool(self.values.get("reverses_number"))


def check_row(row: dict[str, str], ctx: RowContext) -> CheckedRow:
    """Apply every column rule to one row; `values` holds the typed registry fields."""
    flags = 0
    number = row["number"]
    if not number_ok(number, ctx.yy):
        flags |= B_NUMBER
    invoice_type = row["invoice_type"]
    if invoice_type not in InvoiceType.values:
        flags |= B_TYPE
    issued_at = parse_issued_at(row["issued_at"])
    if issued_at is None:
        flags |= B_ISSUED
    elif issued_at > ctx.not_after:
        flags |= B_FUTURE
    seller_uscc = row["seller_uscc"]
    if not uscc_ok(seller_uscc):
        flags |= B_USCC
    seller_name = row["seller_name"].strip(" ")
    if not 1 <= len(seller_name) <= SELLER_NAME_MAX or CONTROL_RE.search(seller_name):
        flags |= B_SELLER
    buyer_name = row["buyer_name"]
    if len(buyer_name) > BUYER_NAME_MAX or CONTROL_RE.search(buyer_name):
        flags |= B_BUYER
    buyer_tax_id = row["buyer_tax_id"]
    if buyer_tax_id and not BUYER_TAX_ID_RE.fullmatch(buyer_tax_id):
        flags |= B_BUYER_TAX
    amount, tax, total = (parse_amount(row[c]) for c in ("amount", "tax", "total"))
    for value, bit in ((amount, B_AMOUNT), (tax, B_TAX), (total, B_TOTAL)):
        if value is None:
            flags |= bit
    reverses = row["reverses_number"]
    is_red = reverses != ""
    if amount is not None and tax is not None and total is not None:
        if amount + tax != total:
            flags |= B_MISMATCH
        if is_red:
            sign_ok = amount <= 0 and tax <= 0 and total < 0
        else:
            sign_ok = amount >= 0 and tax >= 0 and total > 0
        if not sign_ok:
            flags |= B_SIGN
    issuer_kind = ISSUER_KINDS.get(row["issuer_kind"].lower())
    if issuer_kind is None:
        flags |= B_ISSUER
    industry_code = row["industry_code"]
    if industry_code and not INDUSTRY_RE.fullmatch(industry_code):
        flags |= B_INDUSTRY
    area_code = row["area_code"]
    if area_code and not AREA_RE.fullmatch(area_code):
        flags |= B_AREA
    if is_red and (not number_ok(reverses, ctx.yy) or reverses == number):
        flags |= B_REVERSES
    values = {}
    if not flags:
        values = {
            "number": number,
            "invoice_type": invoice_type,
            "issued_at": issued_at,
            "seller_uscc": seller_uscc,
            "seller_name": seller_name,
            "buyer_name_index": name_index(buyer_name),
            "buyer_tax_id": buyer_tax_id,
            "amount": amount,
            "tax": tax,
            "total": total,
            "issuer_kind": issuer_kind,
            "industry_code": industry_code,
            "area_code": area_code,
            "is_red": is_red,
            "reverses_number": reverses,
        }
    return CheckedRow(flags, number, values)


# The registry fields a feed row sets; a row "changed" when one of them differs.
FACT_FIELDS: tuple[str, ...] = (
    "invoice_type",
    "issued_at",
    "seller_uscc",
    "seller_name",
    "buyer_name_index",
    "buyer_tax_id",
    "amount",
    "tax",
    "total",
    "issuer_kind",
    "industry_code",
    "area_code",
    "is_red",
    "reverses_number",
)


# --- Reading the file ------------------------------------------------------------------------


@dataclass
class RowProblem:
    line: int
    code: str
    raw: bytes
    params: dict = field(default_factory=dict)


@dataclass
class Block:
    """A run of records: `payload` is COPY-ready CSV (`<line>,<fields>` per record)."""

    payload: bytes
    records: int  # data records in this block (good and bad)
    problems: list[RowProblem]


def _csv_line(fields: list[str]) -> str:
    """One CSV record (no line end); fields holding a line break are quoted, as PostgreSQL's
    COPY expects (the csv module quotes only the characters of its line terminator)."""
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerow(fields)
    return out.getvalue()[:-2]


class FeedReader:
    """Streams a feed file in blocks: splits records, checks UTF-8 and the column count.

    Memory is bounded by the block size. Line numbers are physical lines, 1 being the header;
    a record spanning lines (a line break inside a quoted field) has its first line's number.
    Blank lines are skipped.
    """

    def __init__(self, stream: IO[bytes], *, block_bytes: int = BLOCK_BYTES):
        self.stream = stream
        self.block_bytes = block_bytes
        self.buffer = b""
        self.eof = False
        self.next_line = 1
        self.columns: list[str] = []
        self.bytes_read = 0
        self.records_seen = 0
        self.records_decoded = 0

    def _fill(self) -> None:
        while not self.eof and b"\n" not in self.buffer:
            data = self.stream.read(self.block_bytes)
            if not data:
                self.eof = True
            self.bytes_read += len(data)
            self.buffer += data

    def read_header(self) -> list[str]:
        self._fill()
        if self.buffer.startswith(b"\xef\xbb\xbf"):
            self.buffer = self.buffer[3:]
        while True:
            if not self.buffer and self.eof:
                raise FeedFileError("feed.empty_file")
            cut = self.buffer.find(b"\n")
            if cut < 0:
                if not self.eof:
                    self._fill()
                    continue
                cut = len(self.buffer)
            line, self.buffer = self.buffer[:cut], self.buffer[cut + 1 :]
            self.next_line += 1
            if line.strip(b" \t\r"):
                break
            self._fill()
        try:
            text = line.rstrip(b"\r").decode("utf-8")
        except UnicodeDecodeError:
            raise FeedFileError("feed.not_utf8") from None
        try:
            names = next(csv.reader([text], strict=True))
        except csv.Error:
            raise FeedFileError("feed.missing_columns", columns=", ".join(FEED_COLUMNS)) from None
        names = [n.strip().lower() for n in names]
        duplicates = sorted({n for n in names if n and names.count(n) > 1})
        if duplicates:
            raise FeedFileError("feed.duplicate_columns", columns=", ".join(duplicates))
        missing = [c for c in FEED_COLUMNS if c not in names]
        if missing:
            raise FeedFileError("feed.missing_columns", columns=", ".join(missing))
        self.columns = names
        return names

    def blocks(self) -> Iterator[Block]:
        """The data records, a few MiB at a time."""
        width = len(self.columns)
        while True:
            data = b"" if self.eof else self.stream.read(self.block_bytes)
            if not data:
                self.eof = True
            self.bytes_read += len(data)
            buffer = self.buffer + data
            if self.eof:
                chunk, self.buffer = buffer, b""
                if chunk and not chunk.endswith(b"\n"):
                    chunk += b"\n"
            else:
                cut = buffer.rfind(b"\n")
                if cut < 0:  # one very long line: keep reading
                    self.buffer = buffer
                    continue
                chunk, self.buffer = buffer[: cut + 1], buffer[cut + 1 :]
            if chunk:
                block = self._block(chunk, width)
                if block is not None:
                    yield block
            if self.eof and not self.buffer:
                return

    def _block(self, chunk: bytes, width: int) -> Block | None:
        lines = chunk.split(b"\n")
        lines.pop()  # the chunk ends with a newline
        first = self.next_line
        commas = width - 1
        clean = b'"' not in chunk and b"\x00" not in chunk
        if clean and b"\r" in chunk:
            # Windows line ends, and no other carriage return: strip them.
            clean = chunk.count(b"\r") == chunk.count(b"\r\n") == len(lines)
            if clean:
                lines = [line[:-1] for line in lines]
        if clean:
            try:
                chunk.decode("utf-8")
            except UnicodeDecodeError:
                clean = False
        if clean and all(line.count(b",") == commas for line in lines):
            # The common case: no quoting, no stray bytes; one pass, no per-field work.
            self.next_line += len(lines)
            self._probe(len(lines), len(lines))
            payload = b"\n".join(
                b"%d,%s" % pair
                for pair in zip(range(first, first + len(lines)), lines, strict=True)
            )
            return Block(payload + b"\n", len(lines), [])
        return self._slow_block(lines, width)

    def _slow_block(self, lines: list[bytes], width: int) -> Block | None:
        out: list[bytes] = []
        problems: list[RowProblem] = []
        records = 0
        i = 0
        base = self.next_line
        while i < len(lines):
            start = i
            record = lines[i]
            i += 1
            # A quoted field may hold line breaks: join lines until the quotes balance.
            while record.count(b'"') % 2 and i < len(lines):
                if i - start >= MAX_RECORD_LINES or len(record) > MAX_RECORD_BYTES:
                    break
                record += b"\n" + lines[i]
                i += 1
            line_no = base + start
            if record.count(b'"') % 2:
                if i >= len(lines) and not self.eof and i - start < MAX_RECORD_LINES:
                    # The record may continue in the next block.
                    self.buffer = b"\n".join(lines[start:]) + b"\n" + self.buffer
                    self.next_line = line_no
                    break
                records += 1
                problems.append(RowProblem(line_no, "feed.malformed_row", lines[start]))
                i = start + 1
                continue
            self.next_line = base + i
            if record.endswith(b"\r"):
                record = record[:-1]
            if not record.strip(b" \t\r"):
                continue
            records += 1
            result = self._record(record, line_no, width)
            if isinstance(result, RowProblem):
                problems.append(result)
            else:
                out.append(b"%d,%s" % (line_no, result))
        else:
            self.next_line = base + len(lines)
        if not records:
            return None
        self._probe(records, len(out) + sum(p.code != "feed.invalid_utf8" for p in problems))
        payload = b"\n".join(out) + b"\n" if out else b""
        return Block(payload, records, problems)

    def _record(self, record: bytes, line_no: int, width: int) -> bytes | RowProblem:
        if b"\x00" in record:
            return RowProblem(line_no, "feed.malformed_row", record)
        try:
            text = record.decode("utf-8")
        except UnicodeDecodeError:
            return RowProblem(line_no, "feed.invalid_utf8", record)
        if '"' not in text and "\r" not in text:
            found = text.count(",") + 1
            if found != width:
                return RowProblem(
                    line_no, "feed.column_count", record, {"found": found, "expected": width}
                )
            return record
        try:
            fields = next(csv.reader([text], strict=True))
        except (csv.Error, StopIteration):
            return RowProblem(line_no, "feed.malformed_row", record)
        if len(fields) != width:
            return RowProblem(
                line_no, "feed.column_count", record, {"found": len(fields), "expected": width}
            )
        if any("\r" in f for f in fields):
            return RowProblem(line_no, "feed.malformed_row", record)
        return _csv_line(fields).encode("utf-8")

    def _probe(self, records: int, decoded: int) -> None:
        """Stop early on a file that is not UTF-8 at all."""
        if self.records_seen >= ENCODING_PROBE_RECORDS:
            return
        self.records_seen += records
        self.records_decoded += decoded
        if self.records_seen >= ENCODING_PROBE_RECORDS and not self.records_decoded:
            raise FeedFileError("feed.not_utf8")

    def records(self) -> Iterator[tuple[int, list[str] | RowProblem]]:
        """Record by record, parsed (the portable path): (line, fields) or (line, problem)."""
        for block in self.blocks():
            parsed = []
            if block.payload:
                text = block.payload.decode("utf-8")
                for fields in csv.reader(io.StringIO(text), strict=True):
                    parsed.append((int(fields[0]), fields[1:]))
            items: list[tuple[int, list[str] | RowProblem]] = [*parsed]
            items.extend((p.line, p) for p in block.problems)
            items.sort(key=lambda item: item[0])
            yield from items


# --- Running an import -----------------------------------------------------------------------


@dataclass
class Progress:
    """What the command line and the admin show while an import runs."""

    phase: str
    rows: int
    bytes_done: int
    bytes_total: int
    started: float

    @property
    def fraction(self) -> float:
        return self.bytes_done / self.bytes_total if self.bytes_total else 0.0


ProgressCallback = Callable[[Progress], None]


@dataclass
class Counters:
    total_rows: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    red_applied: int = 0
    entries_withdrawn: int = 0
    error_rows: int = 0

    def as_fields(self) -> dict[str, int]:
        return dict(self.__dict__)


Issue = tuple[str, str, dict | None]  # (column, code, message parameters)


class ErrorSink:
    """Writes `FeedImportError` rows in batches; the raw row is encrypted per row.

    `add` is called once per bad row (with all its problems), so `error_rows` counts rows.
    """

    batch_size = 1000

    def __init__(self, feed_import: FeedImport, columns: list[str]):
        self.feed_import = feed_import
        self.columns = columns
        self.pending: list[FeedImportError] = []
        self.error_rows = 0
        # While a COPY streams, the connection takes no other statement: keep errors here.
        self.deferred = False

    def add(self, line: int, issues: list[Issue], raw: str) -> None:
        self.error_rows += 1
        with translation.override(settings.LANGUAGE_CODE):
            for column, code, params in issues:
                self.pending.append(
                    FeedImportError(
                        feed_import=self.feed_import,
                        line=line,
                        column=column,
                        code=code,
                        message=error_message(code, params)[:500],
                        raw_row=raw,
                    )
                )
        if len(self.pending) >= self.batch_size and not self.deferred:
            self.flush()

    @property
    def full(self) -> bool:
        return len(self.pending) >= self.batch_size

    def add_problem(self, problem: RowProblem) -> None:
        raw = problem.raw.decode("utf-8", errors="backslashreplace")
        self.add(problem.line, [("", problem.code, problem.params)], raw)

    def add_flags(self, line: int, flags: int, raw: str) -> None:
        self.add(line, [(column, code, None) for column, code in decode_flags(flags)], raw)

    def flush(self) -> None:
        if self.pending:
            FeedImportError.objects.bulk_create(self.pending, batch_size=self.batch_size)
            self.pending = []


def _savepoint_if_nested():
    """A savepoint when the caller holds a transaction (tests, a service calling us), so a
    failed COPY cannot poison it; otherwise autocommit, so progress is visible at once."""
    return transaction.atomic() if connection.in_atomic_block else nullcontext()


class FeedImporter:
    """Imports one file for one `FeedImport`; `run()` returns the counters."""

    def __init__(
        self,
        feed_import: FeedImport,
        stream: IO[bytes],
        *,
        size: int = 0,
        on_progress: ProgressCallback | None = None,
        now: datetime | None = None,
    ):
        self.feed_import = feed_import
        self.stream = stream
        self.size = size
        self.on_progress = on_progress
        self.now = now or timezone.now()
        self.ctx = RowContext.now(self.now)
        self.counters = Counters()
        self.started = time.monotonic()
        self._last_progress = 0.0
        self.reader = FeedReader(stream)
        self.errors: ErrorSink | None = None
        self.timings: dict[str, float] = {}

    def progress(self, phase: str, *, force: bool = False) -> None:
        """Tell the command line and the admin, at most four times a second."""
        now = time.monotonic()
        if not force and now - self._last_progress < 0.25:
            return
        self._last_progress = now
        report = Progress(
            phase, self.counters.total_rows, self.reader.bytes_read, self.size, self.started
        )
        if self.on_progress is not None:
            self.on_progress(report)
        # Reading is most of the work on the Python side; the database's share follows.
        base, span = PHASE_PERCENT.get(phase, (0, 0))
        percent = min(99, int(base + span * (report.fraction if phase == "reading" else 0)))
        FeedImport.objects.filter(pk=self.feed_import.pk).update(
            phase=phase, progress=percent, total_rows=self.counters.total_rows
        )

    def timed(self, step: str, function: Callable[[], object]) -> None:
        """Run one step, keeping its duration (the benchmark prints them)."""
        started = time.monotonic()
        function()
        self.timings[step] = self.timings.get(step, 0.0) + time.monotonic() - started

    def run(self) -> Counters:
        columns = self.reader.read_header()
        FeedImport.objects.filter(pk=self.feed_import.pk).update(columns=columns)
        self.errors = ErrorSink(self.feed_import, columns)
        path = PostgresPath(self) if connection.vendor == "postgresql" else PortablePath(self)
        path.run(columns)
        self.errors.flush()
        self.counters.error_rows = self.errors.error_rows
        return self.counters

    def unknown_blue(self, line: int, raw: str) -> None:
        self.errors.add(line, [("reverses_number", "feed.unknown_blue_invoice", None)], raw)

    def duplicate(self, line: int, first_line: int, raw: str) -> None:
        self.errors.add(
            line, [("number", "feed.duplicate_number", {"first_line": first_line})], raw
        )


PHASE_PERCENT = {"reading": (0, 50), "ranking": (50, 0), "writing": (65, 0), "reversals": (95, 0)}


# --- PostgreSQL: COPY, set-based validation, sorted upsert -----------------------------------

REGISTRY = TaxInvoiceRecord._meta.db_table
NUMBER_CONSTRAINT = "taxrecord_number_pk"  # named in migration invoices 0007
# The staging table and the ranked rows are UNLOGGED, not TEMP: PostgreSQL's parallel workers
# can scan them, and so can the connections that land slices side by side (neither can read a
# session's temporary tables). One set per import, named after it, dropped when it ends.
STAGE_PREFIX = "invoices_feed_stage_"
WORK_TABLES = "feed_reds, feed_red_blues"


def _number_sql(c: str) -> str:
    # No bounded repetitions: PostgreSQL's regex engine is slow with them (see migration 0004).
    return (
        f"(octet_length({c}) = 20 AND {c} ~ '^[0-9]+$' "
        f"AND substr({c}, 1, 2) BETWEEN '21' AND %(yy)s AND substr({c}, 3, 2) = ANY(%(provinces)s))"
    )


_CONTROL = r"'[\x01-\x1f\x7f]'"
# Rules on a row's own values, evaluated per row (in parallel workers).
ROW_RULES = {
    B_NUMBER: "NOT " + _number_sql("s.number"),
    B_TYPE: "s.invoice_type <> ALL(%(invoice_types)s)",
    B_BUYER_TAX: (
        "s.buyer_tax_id <> '' AND NOT (octet_length(s.buyer_tax_id) BETWEEN 15 AND 20 "
        "AND s.buyer_tax_id ~ '^[0-9A-Z]+$')"
    ),
    B_INDUSTRY: (
        "s.industry_code <> '' AND NOT (octet_length(s.industry_code) BETWEEN 2 AND 4 "
        "AND s.industry_code ~ '^[0-9]+$')"
    ),
    B_AREA: (
        "s.area_code <> '' AND NOT (octet_length(s.area_code) = 6 AND s.area_code ~ '^[0-9]+$')"
    ),
    B_REVERSES: (
        "s.reverses_number <> '' AND (NOT "
        + _number_sql("s.reverses_number")
        + " OR s.reverses_number = s.number)"
    ),
}
# Rules on values that repeat across a feed (a city has far fewer sellers, buyer names and
# issue seconds than invoices): evaluated once per distinct value, in lookup tables.
SELLER_RULES = {
    B_USCC: "NOT invoices_uscc_valid(d.seller_uscc)",
    B_SELLER: (
        f"NOT (length(btrim(d.seller_name, ' ')) BETWEEN 1 AND {SELLER_NAME_MAX}) "
        f"OR d.seller_name ~ {_CONTROL}"
    ),
}
BUYER_RULES = {
    B_BUYER: f"length(d.buyer_name) > {BUYER_NAME_MAX} OR d.buyer_name ~ {_CONTROL}",
}
# Rules on parsed values (`v_*`, each computed once): cheap comparisons.
TYPED_RULES = {
    B_ISSUED: "v.v_issued_at IS NULL",
    B_FUTURE: "v.v_issued_at > %(not_after)s",
    B_AMOUNT: "v.v_amount IS NULL",
    B_TAX: "v.v_tax IS NULL",
    B_TOTAL: "v.v_total IS NULL",
    B_MISMATCH: "v.v_amount + v.v_tax <> v.v_total",
    B_SIGN: (
        "CASE WHEN v.reverses_number <> '' "
        "THEN NOT (v.v_amount <= 0 AND v.v_tax <= 0 AND v.v_total < 0) "
        "ELSE NOT (v.v_amount >= 0 AND v.v_tax >= 0 AND v.v_total > 0) END"
    ),
    B_ISSUER: "v.v_issuer_kind IS NULL",
}
_ALL_RULES = [ROW_RULES, SELLER_RULES, BUYER_RULES, TYPED_RULES]
if sorted(bit for rules in _ALL_RULES for bit in rules) != sorted(
    bit for bit, _c, _k in FIELD_CHECKS
):  # pragma: no cover
    raise AssertionError("every column rule needs its SQL, once")


def _mask(rules: dict[int, str]) -> str:
    # NULL (a comparison with an unparsable value) counts as "rule not broken": the parse rule
    # of that value reports it.
    return " | ".join(f"(CASE WHEN {sql} THEN {bit} ELSE 0 END)" for bit, sql in rules.items())


def _amount_sql(column: str) -> str:
    """The amount as numeric, NULL unless it is a plain decimal that fits numeric(14, 2)."""
    # Nested CASEs: the cast runs only on a value the pattern accepted.
    return (
        rf"CASE WHEN s.{column} ~ '^-?[0-9]+(\.[0-9][0-9]?)?$' THEN CASE WHEN "
        f"abs(s.{column}::numeric) < 1e12 THEN s.{column}::numeric END END"
    )


ISSUER_SQL = (
    "CASE lower(s.issuer_kind) "
    + " ".join(f"WHEN '{raw}' THEN '{kind}'" for raw, kind in ISSUER_KINDS.items())
    + " END"
)

# Lookup tables, one row per distinct value. `__STAGE__` is the staging table's name; the
# blind-index key is a bound parameter. Sellers and buyers get a small integer id: the ranked
# rows carry it instead of the credit code, the seller's name and the 64-character blind index
# (half the bytes to sort and write), and the upsert joins the values back.
LOOKUP_SQL = {
    "sellers": f"""
        CREATE UNLOGGED TABLE __STAGE___sellers AS
        SELECT (row_number() OVER ())::int AS seller_id, d.seller_uscc, d.seller_name,
               btrim(d.seller_name, ' ') AS trimmed_name, ({_mask(SELLER_RULES)}) AS flags
        FROM (SELECT DISTINCT seller_uscc, seller_name FROM __STAGE__) d
    """,  # noqa: S608 - our constants and identifiers; values are bound
    "buyers": f"""
        CREATE UNLOGGED TABLE __STAGE___buyers AS
        SELECT (row_number() OVER ())::int AS buyer_id, d.buyer_name,
               ({_mask(BUYER_RULES)}) AS flags,
               coalesce(encode(hmac(convert_to('name|' || nullif(
                   translate(normalize(d.buyer_name, NFKC), %(name_from)s, %(name_to)s), ''
               ), 'UTF8'), %(key)s, 'sha256'), 'hex'), '') AS name_index
        FROM (SELECT DISTINCT buyer_name FROM __STAGE__) d
    """,  # noqa: S608 - our constants and identifiers; values are bound
    "times": """
        CREATE UNLOGGED TABLE __STAGE___times AS
        SELECT d.issued_at, invoices_feed_timestamp(d.issued_at) AS ts
        FROM (SELECT DISTINCT issued_at FROM __STAGE__) d
    """,
}

# Every row validated and typed, with its rank among the valid rows of its number, written in
# the window's order: sorted by number. Sellers and buyers travel as their lookup ids (see
# LOOKUP_SQL). Each level is fenced with OFFSET 0 so no expression is evaluated twice; the
# innermost (parsing, lookups) runs in parallel workers. Values are bound parameters.
#
# The joins are planned in the order written (`join_collapse_limit = 1`), the sellers last:
# the planner multiplies the selectivities of the two seller columns and so expects a handful
# of rows from that join, and would then hash the whole staged file instead of a lookup table.
RANK_SQL = f"""
CREATE UNLOGGED TABLE __RANKED__ AS
SELECT c.line, c.flags = 0 AS ok,
       CASE WHEN c.flags = 0 THEN row_number() OVER w END AS rn,
       CASE WHEN c.flags = 0 THEN first_value(c.line) OVER w END AS first_line,
       c.flags, c.number, c.invoice_type, c.v_issued_at AS issued_at, c.seller_id, c.buyer_id,
       c.buyer_tax_id, c.v_amount::numeric(14, 2) AS amount, c.v_tax::numeric(14, 2) AS tax,
       c.v_total::numeric(14, 2) AS total, c.v_issuer_kind AS issuer_kind, c.industry_code,
       c.area_code, c.reverses_number <> '' AS is_red, c.reverses_number
FROM (
    SELECT v.*, v.known_flags | ({_mask(TYPED_RULES)}) AS flags
    FROM (
        SELECT s.line, s.number, s.invoice_type, s.buyer_tax_id,
               s.industry_code, s.area_code, s.reverses_number,
               ({_mask(ROW_RULES)}) | sel.flags | buy.flags AS known_flags,
               tim.ts AS v_issued_at,
               sel.seller_id,
               buy.buyer_id,
               {_amount_sql("amount")} AS v_amount,
               {_amount_sql("tax")} AS v_tax,
               {_amount_sql("total")} AS v_total,
               {ISSUER_SQL} AS v_issuer_kind
        FROM __STAGE__ s
        JOIN __STAGE___buyers buy USING (buyer_name)
        JOIN __STAGE___times tim USING (issued_at)
        JOIN __STAGE___sellers sel USING (seller_uscc, seller_name)
        WHERE __PART__
        OFFSET 0
    ) v
    OFFSET 0
) c
WINDOW w AS (PARTITION BY __NUMBER_KEY__ ORDER BY c.line)
ORDER BY __NUMBER_KEY__, c.line
"""  # noqa: S608 - our constants and identifiers; values are bound

# The sort key of a number: two integers, the first 18 digits and the last two (a valid number
# is 20 digits, so their order is the number's order, and the registry index's). The first key
# is nearly unique and fits the sort's in-line datum, so almost every comparison is settled
# without touching the row (a leading boolean or a text prefix that every number of a city
# shares sends each comparison to the row: several times slower). Rows that broke a rule have
# no key; they sort last, in one group whose rank nobody reads.
NUMBER_KEY = (
    "CASE WHEN c.flags = 0 THEN left(c.number, 18)::bigint END, "
    "CASE WHEN c.flags = 0 THEN right(c.number, 2)::int END"
)
RANK_SQL = RANK_SQL.replace("__NUMBER_KEY__", NUMBER_KEY)

# The registry facts of some ranked rows (`{table}` is the ranked table or feed_reds), in the
# table's order (number order): the lookup tables are hashed, the ranked rows stream through.
SOURCE_SQL = """
SELECT r.number, r.invoice_type, r.issued_at, sel.seller_uscc, sel.trimmed_name AS seller_name,
       buy.name_index AS buyer_name_index, r.buyer_tax_id, r.amount, r.tax, r.total,
       r.issuer_kind, r.industry_code, r.area_code, r.is_red, r.reverses_number
FROM {table} r
JOIN {stage}_sellers sel ON sel.seller_id = r.seller_id
JOIN {stage}_buyers buy ON buy.buyer_id = r.buyer_id
WHERE {where}
"""

_FACTS = ", ".join(FACT_FIELDS)
_R_FACTS = ", ".join(f"r.{f}" for f in FACT_FIELDS)
_T_FACTS = ", ".join(f"t.{f}" for f in FACT_FIELDS)
# The landing of one slice of number-sorted rows, in three statements (see PostgresPath._land):
# is any registry record in the slice's number range? If so, update the records whose facts
# changed and insert the numbers not in the registry; if not — the usual case for a day's new
# invoices — insert everything with a plain INSERT. A plain INSERT is cheaper than
# INSERT … ON CONFLICT: no speculative insertion (and its extra WAL record) per row.
EXISTING_SQL = f"""
SELECT EXISTS (SELECT 1 FROM {REGISTRY} WHERE number BETWEEN %(low)s AND %(high)s)
"""  # noqa: S608 - our constants and identifiers; values are bound
UPDATE_SQL = f"""
UPDATE {REGISTRY} AS t SET ({_FACTS}, last_synced_at) = ({_R_FACTS}, %(now)s)
FROM ({{source}}) r
WHERE t.number = r.number AND t.number BETWEEN %(low)s AND %(high)s
  AND ({_T_FACTS}) IS DISTINCT FROM ({_R_FACTS})
"""  # noqa: S608 - our constants and identifiers; values are bound
INSERT_SQL = f"""
INSERT INTO {REGISTRY} (number, {_FACTS}, status, red_total, last_synced_at)
SELECT r.number, {_R_FACTS}, '{RegistryStatus.NORMAL.value}', 0, %(now)s
FROM ({{source}}) r
"""  # noqa: S608 - our constants and identifiers; values are bound
INSERT_NEW_SQL = f"""{INSERT_SQL}WHERE NOT EXISTS (
    SELECT 1 FROM {REGISTRY} t
    WHERE t.number = r.number AND t.number BETWEEN %(low)s AND %(high)s
)
"""  # noqa: S608 - our constants and identifiers; values are bound
# The fallback when a number of the slice landed meanwhile (another import, a verification
# reply): the same outcome, row by row through ON CONFLICT.
UPSERT_SQL = f"""
WITH landed AS (
    INSERT INTO {REGISTRY} AS t (number, {_FACTS}, status, red_total, last_synced_at)
    SELECT r.number, {_R_FACTS}, '{RegistryStatus.NORMAL.value}', 0, %(now)s
    FROM ({{source}}) r
    ON CONFLICT (number) DO UPDATE SET
        {", ".join(f"{f} = EXCLUDED.{f}" for f in FACT_FIELDS)},
        last_synced_at = EXCLUDED.last_synced_at
    WHERE ({_T_FACTS}) IS DISTINCT FROM ({", ".join(f"EXCLUDED.{f}" for f in FACT_FIELDS)})
    RETURNING t.xmax = 0 AS inserted
)
SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM landed
"""  # noqa: S608 - our constants and identifiers; values are bound

RED_BLUES_SQL = f"""
CREATE TEMP TABLE feed_red_blues AS
SELECT d.line, d.reverses_number AS number,
       EXISTS (SELECT 1 FROM {REGISTRY} b WHERE b.number = d.reverses_number AND NOT b.is_red)
           AS known
FROM feed_reds d
"""  # noqa: S608 - our constants and identifiers; values are bound


def _is_number_conflict(exc: IntegrityError) -> bool:
    """Whether the registry's unique number refused a row (and nothing else failed)."""
    import psycopg

    cause = exc.__cause__
    return isinstance(cause, psycopg.errors.UniqueViolation) and (
        cause.diag.constraint_name == NUMBER_CONSTRAINT
    )


class PostgresPath:
    """COPY into a temporary staging table, rank set-based, land in number order."""

    chunk_rows = 1_000_000  # ranked rows per landing transaction
    segment_bytes = 64 * 1024 * 1024  # per COPY statement

    def __init__(self, importer: FeedImporter):
        self.importer = importer
        self.counters = importer.counters
        self.errors = importer.errors

    def run(self, columns: list[str]) -> None:
        self.names = [c if c in FEED_COLUMNS else f"extra_{i}" for i, c in enumerate(columns)]
        self.stage = f"{STAGE_PREFIX}{self.importer.feed_import.pk}"
        # The ranked rows: one table per range of numbers (`parts`), ranked and landed side by
        # side, and a view of them all for the steps that read every row.
        self.ranked = f"{self.stage}_ranked"
        workers = settings.FEED_IMPORT_WORKERS
        self.parallel = workers > 1 and not connection.in_atomic_block
        self.parts = [f"{self.ranked}_{k}" for k in range(max(1, workers))]
        with connection.cursor() as cursor:
            self.cursor = cursor
            self._drop_leftovers()
            cursor.execute(f"DROP TABLE IF EXISTS {self._own_tables()} CASCADE")
            extra = [n for n in self.names if n not in FEED_COLUMNS]
            stage_columns = ", ".join(f"{c} text" for c in [*FEED_COLUMNS, *extra])
            cursor.execute(
                f"CREATE UNLOGGED TABLE {self.stage} (line bigint NOT NULL, {stage_columns})"
            )
            try:
                timed = self.importer.timed
                timed("copy", self._load)
                self.importer.progress("ranking", force=True)
                timed("rank", self._rank)
                timed("report", self._report_bad_rows)
                self.importer.progress("writing", force=True)
                timed("upsert_blue", self._land_blues)
                timed("upsert_red", self._land_reds)
                self.errors.flush()
                self.importer.progress("reversals", force=True)
                timed("reversals", self._reverse)
            finally:
                with _savepoint_if_nested():
                    cursor.execute(f"DROP TABLE IF EXISTS {self._own_tables()} CASCADE")

    def _own_tables(self) -> str:
        lookups = ", ".join(f"{self.stage}_{name}" for name in LOOKUP_SQL)
        return f"{self.stage}, {lookups}, {', '.join(self.parts)}, {WORK_TABLES}"

    def _drop_leftovers(self) -> None:
        """Staging tables of imports that died (a killed worker) are dropped by the next one."""
        self.cursor.execute(
            "SELECT relname FROM pg_class WHERE relkind = 'r' AND relpersistence = 'u' "
            "AND relname LIKE %s",
            [STAGE_PREFIX.replace("_", r"\_") + "%"],
        )
        # The import's id, then its own tables' suffixes (`_sellers`, `_ranked`, …).
        owners = {
            name: int(owner)
            for (name,) in self.cursor.fetchall()
            if (owner := name.removeprefix(STAGE_PREFIX).split("_")[0]).isdigit()
        }
        running = set(
            FeedImport.objects.filter(
                pk__in=set(owners.values()), status=FeedImportStatus.RUNNING
            ).values_list("pk", flat=True)
        )
        for name, owner in owners.items():
            if owner not in running:
                self.cursor.execute(f"DROP TABLE IF EXISTS {name} CASCADE")

    def _load(self) -> None:
        """COPY the file in segments of a few dozen MiB: between two segments the connection
        is free to write the error rows found so far and the progress the admin shows."""
        sql = (
            f"COPY {self.stage} (line, {', '.join(self.names)}) FROM STDIN "
            f"(FORMAT csv, FORCE_NOT_NULL ({', '.join(self.names)}))"
        )
        blocks = self.importer.reader.blocks()
        with _savepoint_if_nested():
            while self._copy_segment(sql, blocks):
                self.errors.flush()
                self.importer.progress("reading")
            self.errors.flush()
        # Statistics, so the planner hashes the small lookup tables, not the staged file.
        self.cursor.execute(f"ANALYZE {self.stage}")

    def _copy_segment(self, sql: str, blocks: Iterator[Block]) -> bool:
        """One COPY statement; False once the file is exhausted."""
        from psycopg.copy import QueuedLibpqWriter

        raw_cursor = self.cursor.cursor
        started, sent = time.monotonic(), 0
        self.errors.deferred = True
        try:
            with raw_cursor.copy(sql, writer=QueuedLibpqWriter(raw_cursor)) as copy:
                for block in blocks:
                    if block.payload:
                        copy.write(block.payload)
                    for problem in block.problems:
                        self.errors.add_problem(problem)
                    self.counters.total_rows += block.records
                    sent += len(block.payload)
                    if (
                        sent >= self.segment_bytes
                        or self.errors.full
                        or time.monotonic() - started >= 2.0
                    ):
                        return True
            return False
        finally:
            self.errors.deferred = False

    def _rank(self) -> None:
        params = {
            "yy": self.importer.ctx.yy,
            "provinces": sorted(PROVINCE_CODES),
            "invoice_types": list(InvoiceType.values),
            "not_after": self.importer.ctx.not_after,
            "name_from": NAME_DOTS + PY_WHITESPACE,
            "name_to": "·" * len(NAME_DOTS),
            "key": crypto.keyring().blind_keys[0],
        }
        with transaction.atomic():
            for step, sql in LOOKUP_SQL.items():
                self._run_bound(step, sql.replace("__STAGE__", self.stage), params)
        started = time.monotonic()
        jobs = [
            (part, {**params, "low": low, "high": high})
            for part, (low, high) in zip(self.parts, self._number_ranges(), strict=True)
        ]
        if self.parallel:
            # Each range on its own connection, both cores busy all along (one statement's
            # parallel workers leave one core idle while its leader sorts and writes).
            with ThreadPoolExecutor(len(jobs), thread_name_prefix="feed-rank") as pool:
                for future in [pool.submit(self._rank_on_own_connection, *job) for job in jobs]:
                    future.result()
        else:
            for job in jobs:
                self._rank_part(*job)
        self.importer.timings["rank.rank"] = time.monotonic() - started
        union = " UNION ALL ".join(f"SELECT * FROM {part}" for part in self.parts)  # noqa: S608 - our identifiers
        self.cursor.execute(f"CREATE VIEW {self.ranked} AS {union}")

    def _number_ranges(self) -> list[tuple[str | None, str | None]]:
        """Bounds that split the staged numbers into `len(parts)` ranges of about equal size
        (from a sample; byte order, which is number order for valid numbers), so that the
        parts land in disjoint stretches of the registry's number index. A row's range
        depends only on its number: repeated numbers meet in one part."""
        count = len(self.parts)
        if count == 1:
            return [(None, None)]
        sample = "TABLESAMPLE SYSTEM (1)" if self.counters.total_rows > 1_000_000 else ""
        self.cursor.execute(
            'SELECT percentile_disc(%s) WITHIN GROUP (ORDER BY number COLLATE "C") '  # noqa: S608 - our identifier
            f"FROM {self.stage} {sample}",
            [[k / count for k in range(1, count)]],
        )
        bounds = self.cursor.fetchone()[0] or [None] * (count - 1)
        return list(zip([None, *bounds], [*bounds, None], strict=True))

    def _rank_on_own_connection(self, part: str, params: dict) -> None:
        try:
            self._rank_part(part, params)
        finally:
            connection.close()

    def _rank_part(self, part: str, params: dict) -> None:
        """Validate, type and rank the staged rows of one range of numbers into `part`."""
        where = " AND ".join(
            ["TRUE"]
            + (['s.number COLLATE "C" >= %(low)s'] if params["low"] is not None else [])
            + (['s.number COLLATE "C" < %(high)s'] if params["high"] is not None else [])
        )
        sql = (
            RANK_SQL.replace("__STAGE__", self.stage)
            .replace("__RANKED__", part)
            .replace("__PART__", where)
        )
        with transaction.atomic():
            if self.parallel:
                # The ranges already keep the cores busy.
                with connection.cursor() as cursor:
                    cursor.execute("SET LOCAL max_parallel_workers_per_gather = 0")
            self._run_bound(None, sql, params)

    def _run_bound(self, step: str | None, sql: str, params: dict) -> None:
        """One statement of the ranking, in the caller's transaction on this thread's
        connection, then ANALYZE of the table it made."""
        import psycopg

        connection.ensure_connection()
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL work_mem = '512MB'")
            # Compiling these expressions costs seconds per process and gains little.
            cursor.execute("SET LOCAL jit = off")
            # Join estimates over fresh tables are poor; a nested loop over millions of rows
            # would never finish. Hash joins are right for every size here.
            cursor.execute("SET LOCAL enable_nestloop = off")
            cursor.execute("SET LOCAL enable_mergejoin = off")
            # The joins in the order written (see RANK_SQL).
            cursor.execute("SET LOCAL join_collapse_limit = 1")
        # A server-side-binding cursor on the raw connection: the blind-index key travels as a
        # bound parameter, never inside the statement text (so never in a query log,
        # pg_stat_activity or Django's debug SQL log).
        with psycopg.Cursor(connection.connection) as bound:
            started = time.monotonic()
            # Only the parameters a statement uses: the key goes where it is needed.
            bound.execute(sql, {k: v for k, v in params.items() if f"%({k})s" in sql})
            bound.execute(f"ANALYZE {sql.split()[3]}")
            if step:
                self.importer.timings[f"rank.{step}"] = time.monotonic() - started

    def _raw_rows(self, where: str, params=None) -> Iterator[tuple]:
        """(line, ranked columns…, raw row text) of some rows, in line order, streamed."""
        select = ", ".join(f"s.{c}" for c in self.names)
        with transaction.atomic(), connection.chunked_cursor() as rows:
            rows.execute(
                f"SELECT r.line, r.flags, r.ok, r.first_line, {select} "  # noqa: S608 - our constants and identifiers; values are bound
                f"FROM {self.ranked} r JOIN {self.stage} s ON s.line = r.line WHERE {where} "
                "ORDER BY r.line",
                params,
            )
            while batch := rows.fetchmany(2000):
                for line, flags, ok, first_line, *raw in batch:
                    yield line, flags, ok, first_line, _csv_line(list(raw))

    def _report_bad_rows(self) -> None:
        """Rows that broke a column rule, and later lines repeating a valid row's number.

        One scan of the ranked rows also counts what the landing steps need (the blue and red
        candidates), so they do not scan again for it."""
        self.cursor.execute(
            "SELECT count(*) FILTER (WHERE NOT ok OR rn > 1), "  # noqa: S608 - our identifier
            "count(*) FILTER (WHERE ok AND rn = 1 AND NOT is_red), "
            f"count(*) FILTER (WHERE ok AND rn = 1 AND is_red), count(*) FROM {self.ranked}"
        )
        bad, self.blue_candidates, self.red_candidates, self.ranked_rows = self.cursor.fetchone()
        if not bad:
            return
        for line, flags, ok, first_line, raw in self._raw_rows("NOT r.ok OR r.rn > 1"):
            if ok:
                self.importer.duplicate(line, first_line, raw)
            else:
                self.errors.add_flags(line, flags, raw)
        self.errors.flush()

    def _land(self, table: str, where: str) -> tuple[int, int]:
        """Write one slice of number-sorted rows to the registry, in one transaction, on the
        calling thread's connection; returns (inserted, updated). Rows whose facts the
        registry already holds are not touched."""
        source = SOURCE_SQL.format(table=table, stage=self.stage, where=where)
        params: dict[str, object] = {"now": self.importer.now}
        updated = 0
        with transaction.atomic(), connection.cursor() as cursor:
            # The ranked rows stay the outer side of every join, whose lookup tables are hashed
            # in one batch (a hash join in batches would reorder its output): the rows reach
            # the number index in number order.
            cursor.execute("SET LOCAL join_collapse_limit = 1")
            cursor.execute("SET LOCAL work_mem = '256MB'")
            cursor.execute("SET LOCAL jit = off")
            cursor.execute(f"SELECT min(r.number), max(r.number) FROM {table} r WHERE {where}")  # noqa: S608 - our constants and identifiers; values are bound
            params["low"], params["high"] = cursor.fetchone()
            if params["low"] is None:
                return 0, 0
            cursor.execute(EXISTING_SQL, params)
            (existing,) = cursor.fetchone()
            if existing:
                cursor.execute(UPDATE_SQL.format(source=source), params)
                updated = cursor.rowcount
            try:
                with transaction.atomic():
                    insert = INSERT_NEW_SQL if existing else INSERT_SQL
                    cursor.execute(insert.format(source=source), params)
                    inserted = cursor.rowcount
            except IntegrityError as exc:
                if not _is_number_conflict(exc):
                    raise
                # A number of this slice landed meanwhile (another import, a verification
                # reply): ON CONFLICT settles each row (rows updated above are unchanged now).
                cursor.execute(UPSERT_SQL.format(source=source), params)
                inserted, more = cursor.fetchone()
                updated += more
        return inserted, updated

    def _land_on_own_connection(self, table: str, where: str) -> tuple[int, int]:
        """A landing thread's slice, on that thread's own connection (closed afterwards)."""
        try:
            return self._land(table, where)
        finally:
            connection.close()

    def _land_blues(self) -> None:
        # Slices of about `chunk_rows` rows (whatever the width of a row): TID range scans of
        # consecutive stretches of a number-sorted part, one transaction each, so the admin
        # sees progress between them. The parts' slices alternate: side by side, the landing
        # connections write to disjoint stretches of the number index.
        per_part = []
        for part in self.parts:
            self.cursor.execute(
                "SELECT pg_relation_size(oid) / current_setting('block_size')::int, reltuples "
                "FROM pg_class WHERE oid = %s::regclass",
                [part],
            )
            blocks, rows = self.cursor.fetchone()
            step = max(1, int(blocks * self.chunk_rows // rows)) if rows > 0 else blocks + 1
            per_part.append(
                [
                    (
                        part,
                        f"r.ok AND r.rn = 1 AND NOT r.is_red AND r.ctid >= '({start},0)'::tid "
                        f"AND r.ctid < '({start + step},0)'::tid",
                    )
                    for start in range(0, blocks + 1, step)
                ]
            )
        slices = [s for group in zip_longest(*per_part) for s in group if s is not None]
        landed = 0

        def count(inserted: int, updated: int) -> int:
            self.counters.inserted += inserted
            self.counters.updated += updated
            return inserted + updated

        if self.parallel and len(slices) > 1:
            # Side by side on their own connections: the slices' number ranges are disjoint,
            # so they meet neither in the registry's unique index nor in its locks. (Inside a
            # caller's transaction — tests, a service — other connections could not see the
            # staged rows, so the slices land one after another on the caller's connection.)
            workers = min(len(self.parts), len(slices))
            with ThreadPoolExecutor(workers, thread_name_prefix="feed-land") as pool:
                pending = {pool.submit(self._land_on_own_connection, *s) for s in slices}
                try:
                    while pending:
                        done, pending = wait(pending, return_when=FIRST_EXCEPTION)
                        for future in done:
                            landed += count(*future.result())  # re-raises a slice's error
                        self.importer.progress("writing")
                except BaseException:
                    for future in pending:
                        future.cancel()
                    raise
        else:
            for table, where in slices:
                landed += count(*self._land(table, where))
                self.importer.progress("writing")
        self.counters.unchanged += self.blue_candidates - landed
        if landed:
            # Fresh statistics for the look-ups that follow (red invoices' blue ones, the
            # reversals): with a registry that just grew by millions, stale ones lead the
            # planner to hash the whole registry instead of probing its indexes.
            self.cursor.execute(f"ANALYZE {REGISTRY}")

    def _land_reds(self) -> None:
        """Red invoices land once their blue invoice is known (in the registry by now)."""
        # A blue-only feed: the (empty) table without a scan of the ranked rows.
        data = "WITH DATA" if self.red_candidates else "WITH NO DATA"
        where = "ok AND rn = 1 AND is_red"
        sql = f"CREATE TEMP TABLE feed_reds AS SELECT * FROM {self.ranked} WHERE {where} {data}"  # noqa: S608 - our constants only
        self.cursor.execute(sql)
        self.cursor.execute(RED_BLUES_SQL)
        self.cursor.execute("SELECT EXISTS (SELECT 1 FROM feed_red_blues WHERE NOT known)")
        if self.cursor.fetchone()[0]:
            where = "r.line IN (SELECT line FROM feed_red_blues WHERE NOT known)"
            for line, _flags, _ok, _first, raw in self._raw_rows(where):
                self.importer.unknown_blue(line, raw)
            self.cursor.execute(
                "DELETE FROM feed_reds WHERE line IN (SELECT line FROM feed_red_blues "
                "WHERE NOT known)"
            )
            self.cursor.execute("DELETE FROM feed_red_blues WHERE NOT known")
        self.cursor.execute("SELECT count(*) FROM feed_reds")
        candidates = self.cursor.fetchone()[0]
        inserted, updated = self._land("feed_reds", "TRUE")
        self.counters.inserted += inserted
        self.counters.updated += updated
        self.counters.unchanged += candidates - inserted - updated
        self.counters.red_applied += inserted + updated

    def _reverse(self) -> None:
        from .reversals import registry_apply_reds

        outcome = registry_apply_reds(blues_table="feed_red_blues", now=self.importer.now)
        self.counters.entries_withdrawn += outcome.entries_withdrawn


# --- SQLite (and any other database): the portable path --------------------------------------


def _dump(values: dict) -> str:
    return json.dumps(
        {
            **values,
            "issued_at": values["issued_at"].isoformat(),
            **{k: str(values[k]) for k in ("amount", "tax", "total")},
        },
        ensure_ascii=False,
    )


def _load_values(text: str) -> dict:
    values = json.loads(text)
    values["issued_at"] = datetime.fromisoformat(values["issued_at"])
    for k in ("amount", "tax", "total"):
        values[k] = Decimal(values[k])
    return values


class PortablePath:
    """Rules applied in Python, valid rows staged in a temporary table, written by the ORM."""

    batch_size = 500

    def __init__(self, importer: FeedImporter):
        self.importer = importer
        self.counters = importer.counters
        self.errors = importer.errors

    def run(self, columns: list[str]) -> None:
        with connection.cursor() as cursor:
            self.cursor = cursor
            cursor.execute("DROP TABLE IF EXISTS feed_portable")
            cursor.execute(
                "CREATE TEMP TABLE feed_portable (line integer PRIMARY KEY, "
                "number text NOT NULL, is_red integer NOT NULL, values_json text NOT NULL, "
                "raw text NOT NULL)"
            )
            cursor.execute("CREATE INDEX feed_portable_number ON feed_portable (number, line)")
            try:
                with _savepoint_if_nested():
                    self._read(columns)
                self.importer.progress("writing", force=True)
                blues = set()
                for red in (False, True):
                    blues |= self._land(red=red)
                self.errors.flush()
                self.importer.progress("reversals", force=True)
                from .reversals import registry_apply_reds

                outcome = registry_apply_reds(blue_numbers=blues, now=self.importer.now)
                self.counters.entries_withdrawn += outcome.entries_withdrawn
            finally:
                cursor.execute("DROP TABLE IF EXISTS feed_portable")

    def _read(self, columns: list[str]) -> None:
        ctx = self.importer.ctx
        pending: list[tuple] = []
        for line, item in self.importer.reader.records():
            self.counters.total_rows += 1
            if isinstance(item, RowProblem):
                self.errors.add_problem(item)
                continue
            checked = check_row(dict(zip(columns, item, strict=True)), ctx)
            raw = _csv_line(item)
            if checked.flags:
                self.errors.add_flags(line, checked.flags, raw)
                continue
            pending.append((line, checked.number, int(checked.is_red), _dump(checked.values), raw))
            if len(pending) >= self.batch_size:
                self._stage(pending)
                pending = []
            self.importer.progress("reading")
        self._stage(pending)
        self.errors.flush()

    def _stage(self, rows: list[tuple]) -> None:
        if rows:
            self.cursor.executemany(
                "INSERT INTO feed_portable (line, number, is_red, values_json, raw) "
                "VALUES (%s, %s, %s, %s, %s)",
                rows,
            )

    def _batches(self, *, red: bool) -> Iterator[list[tuple]]:
        """Staged rows of one colour in line order, with the first line of their number."""
        last = 0
        while True:
            self.cursor.execute(
                "SELECT p.line, p.values_json, p.raw, (SELECT min(q.line) FROM feed_portable q "
                "WHERE q.number = p.number) FROM feed_portable p "
                "WHERE p.is_red = %s AND p.line > %s ORDER BY p.line LIMIT %s",
                [int(red), last, self.batch_size],
            )
            rows = self.cursor.fetchall()
            if not rows:
                return
            last = rows[-1][0]
            yield rows

    def _land(self, *, red: bool) -> set[str]:
        """Blues first, then reds whose blue is known; returns the blues the reds name."""
        blues: set[str] = set()
        for rows in self._batches(red=red):
            batch = []
            for line, values_json, raw, first in rows:
                if first != line:
                    self.importer.duplicate(line, first, raw)
                else:
                    batch.append((line, _load_values(values_json), raw))
            if red:
                wanted = {values["reverses_number"] for _l, values, _r in batch}
                known = set(
                    TaxInvoiceRecord.objects.filter(number__in=wanted, is_red=False).values_list(
                        "number", flat=True
                    )
                )
                for line, values, raw in batch:
                    if values["reverses_number"] not in known:
                        self.importer.unknown_blue(line, raw)
                batch = [item for item in batch if item[1]["reverses_number"] in known]
                blues |= {values["reverses_number"] for _l, values, _r in batch}
            self._write([values for _l, values, _r in batch], red=red)
            self.importer.progress("writing")
        return blues

    def _write(self, rows: list[dict], *, red: bool) -> None:
        if not rows:
            return
        now = self.importer.now
        with transaction.atomic():
            existing = TaxInvoiceRecord.objects.in_bulk(
                [r["number"] for r in rows], field_name="number"
            )
            new, changed = [], []
            for values in rows:
                record = existing.get(values["number"])
                if record is None:
                    new.append(TaxInvoiceRecord(**values, last_synced_at=now))
                elif any(getattr(record, f) != values[f] for f in FACT_FIELDS):
                    for f in FACT_FIELDS:
                        setattr(record, f, values[f])
                    record.last_synced_at = now
                    changed.append(record)
            TaxInvoiceRecord.objects.bulk_create(new, batch_size=self.batch_size)
            TaxInvoiceRecord.objects.bulk_update(
                changed, [*FACT_FIELDS, "last_synced_at"], batch_size=self.batch_size
            )
        self.counters.inserted += len(new)
        self.counters.updated += len(changed)
        self.counters.unchanged += len(rows) - len(new) - len(changed)
        if red:
            self.counters.red_applied += len(new) + len(changed)


# --- The service -------------------------------------------------------------------------------


def feed_import_run(
    *,
    feed_import: FeedImport,
    stream: IO[bytes] | None = None,
    on_progress: ProgressCallback | None = None,
    timings: dict[str, float] | None = None,
) -> FeedImport:
    """Run one import over its uploaded file (or `stream`) and record the outcome.

    Bad data never raises: bad rows are reported, a file-level problem ends the import
    `failed` with the reason (and nothing of the file lands). Anything unexpected is recorded
    the same way, then re-raised for the task runner.
    """
    FeedImport.objects.filter(pk=feed_import.pk).update(
        status=FeedImportStatus.RUNNING,
        started_at=timezone.now(),
        finished_at=None,
        error_message="",
        progress=0,
    )
    owned = stream is None
    if owned:
        stream = feed_import.file.open("rb")
    try:
        size = _size_of(stream)
        FeedImport.objects.filter(pk=feed_import.pk).update(bytes_total=size)
        importer = FeedImporter(feed_import, stream, size=size, on_progress=on_progress)
        try:
            counters = importer.run()
        except FeedFileError as exc:
            # Whatever was reported before the file turned out not to be a feed is moot.
            FeedImportError.objects.filter(feed_import=feed_import).delete()
            FeedImportError.objects.create(
                feed_import=feed_import, line=0, code=exc.code, message=exc.message[:500]
            )
            _finish(feed_import, FeedImportStatus.FAILED, Counters(error_rows=1), exc.message)
            return feed_import
        except Exception:
            _finish(
                feed_import,
                FeedImportStatus.FAILED,
                importer.counters,
                str(_("The import stopped on an unexpected error; see the server log.")),
            )
            logger.exception("feed import %s stopped", feed_import.pk)
            raise
        _finish(feed_import, FeedImportStatus.DONE, counters, "")
        if timings is not None:
            timings.update(importer.timings)
        if on_progress is not None:
            done = Progress("done", counters.total_rows, size, size, importer.started)
            on_progress(done)
        return feed_import
    finally:
        if owned:
            stream.close()


def _size_of(stream) -> int:
    try:
        position = stream.tell()
        stream.seek(0, io.SEEK_END)
        size = stream.tell()
        stream.seek(position)
        return size
    except (OSError, AttributeError):
        return 0


def _finish(feed_import: FeedImport, status: str, counters: Counters, message: str) -> None:
    values = {
        **counters.as_fields(),
        "status": status,
        "phase": "done" if status == FeedImportStatus.DONE else "",
        "finished_at": timezone.now(),
        "error_message": message,
    }
    if status == FeedImportStatus.DONE:
        values["progress"] = 100
    FeedImport.objects.filter(pk=feed_import.pk).update(**values)
    feed_import.refresh_from_db()
