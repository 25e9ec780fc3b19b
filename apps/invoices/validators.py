"""Validation of fully digital invoice (数电发票) numbers and their QR-code payloads.

Invoice number: exactly 20 ASCII digits::

    digits 1-2   two-digit year of issue (21 .. current year)
    digits 3-4   province code (see :data:`~apps.common.areas.PROVINCE_CODES`)
    digit  5     issuing channel
    digits 6-20  sequence number

QR payload (comma separated, 8 fields, one trailing empty 9th field tolerated)::

    01,32,,<20-digit number>,<total incl. tax>,<YYYYMMDD>,<ignored>,<check code>
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Final
from zoneinfo import ZoneInfo

from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from apps.common.areas import PROVINCE_CODES
from apps.common.normalize import normalize_code

__all__ = [
    "EARLIEST_INVOICE_YEAR",
    "INVOICE_NUMBER_LENGTH",
    "MAX_INVOICE_TOTAL",
    "MAX_QR_PAYLOAD_LENGTH",
    "PROVINCE_CODES",
    "QR_VERSION",
    "InvoiceQR",
    "parse_invoice_qr",
    "validate_invoice_number",
]

INVOICE_NUMBER_LENGTH: Final[int] = 20
EARLIEST_INVOICE_YEAR: Final[int] = 21  # two-digit year; 数电发票 were introduced in 2021
MAX_QR_PAYLOAD_LENGTH: Final[int] = 512
MAX_INVOICE_TOTAL: Final[Decimal] = Decimal("99999999999.99")
QR_VERSION: Final[str] = "01"

_DIGITS: Final[frozenset[str]] = frozenset("0123456789")
_QR_FIELD_COUNT: Final[int] = 8
_TIMEZONE: Final[ZoneInfo] = ZoneInfo("Asia/Shanghai")
# ``[0-9]`` rather than ``\d``: ``\d`` also matches non-ASCII digits for str patterns.
_INVOICE_TYPE_RE: Final[re.Pattern[str]] = re.compile(r"[0-9]{2}")
# No sign, exponent, leading zeros, bare/trailing point; at most 11 integer digits and
# 2 decimals, so the syntax alone bounds the value by MAX_INVOICE_TOTAL.
_AMOUNT_RE: Final[re.Pattern[str]] = re.compile(r"(?:0|[1-9][0-9]{0,10})(?:\.[0-9]{1,2})?")
_DATE_RE: Final[re.Pattern[str]] = re.compile(r"[0-9]{8}")
_CHECK_CODE_RE: Final[re.Pattern[str]] = re.compile(r"[0-9A-Za-z]{0,64}")


def _shanghai_today() -> date:
    """Today's date in China; independent of Django settings."""
    return datetime.now(_TIMEZONE).date()


def _check_invoice_number(number: str, today: date) -> str:
    """Validate an already-normalised invoice number (no stripping or folding here)."""
    if len(number) != INVOICE_NUMBER_LENGTH:
        raise ValidationError(
            _("The invoice number must be 20 digits."),
            code="invoice_number.invalid_length",
        )
    if any(ch not in _DIGITS for ch in number):
        raise ValidationError(
            _("The invoice number may only contain digits."),
            code="invoice_number.invalid_character",
        )
    if not EARLIEST_INVOICE_YEAR <= int(number[:2]) <= today.year % 100:
        raise ValidationError(
            _("The invoice number contains an invalid year."),
            code="invoice_number.invalid_year",
        )
    if number[2:4] not in PROVINCE_CODES:
        raise ValidationError(
            _("The invoice number contains an invalid province code."),
            code="invoice_number.invalid_province",
        )
    return number


def validate_invoice_number(value: object, *, today: date | None = None) -> str:
    """Validate a 20-digit 数电发票 number and return it normalised.

    Full-width digits are folded to ASCII and surrounding (including ideographic) spaces
    stripped.  On success the result is 20 ASCII digits whose first two digits ``yy``
    satisfy ``21 <= yy <= today.year % 100`` (``today`` defaults to the current date in
    Asia/Shanghai) and whose digits 3-4 are in ``PROVINCE_CODES``.  Otherwise
    ``ValidationError`` is raised with one of the codes (checked in this order)
    ``invoice_number.invalid_type``, ``invoice_number.invalid_length``,
    ``invoice_number.invalid_character``, ``invoice_number.invalid_year`` or
    ``invoice_number.invalid_province``.
    """
    number = normalize_code(value, code_prefix="invoice_number")
    return _check_invoice_number(number, _shanghai_today() if today is None else today)


@dataclass(frozen=True, slots=True)
class InvoiceQR:
    """The fields of a parsed, validated 数电发票 QR payload."""

    version: str
    invoice_type: str
    number: str
    total: Decimal
    issue_date: date
    check_code: str


def _malformed() -> ValidationError:
    return ValidationError(
        _("The invoice QR code content is not in the expected format."),
        code="invoice_qr.malformed",
    )


def parse_invoice_qr(payload: object, *, today: date | None = None) -> InvoiceQR:
    """Parse and validate the text content of a 数电发票 QR code.

    ``payload`` is untrusted.  It must be a ``str`` of at most 512 characters; full-width
    ASCII (including the full-width comma) is folded to ASCII and surrounding whitespace
    stripped, but nothing is stripped *inside* fields.  The payload must contain no control
    characters and split on ``,`` into exactly 8 fields (a 9th field is tolerated only if
    empty, i.e. a trailing comma).  Field rules:

    1. version: exactly ``"01"``;
    2. invoice type: two ASCII digits (``32`` 普票, ``31`` 专票, …);
    3. invoice code: must be empty;
    4. invoice number: see :func:`validate_invoice_number` (its errors propagate as is);
    5. total including tax: plain decimal, at most 2 decimal places,
       ``0 < total <= 99999999999.99`` (parsed as ``Decimal``, never ``float``);
    6. issue date: ``YYYYMMDD``, a real date not after ``today``;
    7. ignored;
    8. check code: 0-64 ASCII letters/digits.

    ``today`` defaults to the current date in Asia/Shanghai.  Raises ``ValidationError``
    with an ``invoice_qr.*`` or ``invoice_number.*`` code on failure.
    """
    if not isinstance(payload, str):
        raise ValidationError(
            _("The invoice QR code content must be text."), code="invoice_qr.invalid_type"
        )
    if len(payload) > MAX_QR_PAYLOAD_LENGTH:
        raise ValidationError(
            _("The invoice QR code content is too long."), code="invoice_qr.too_long"
        )
    if today is None:
        today = _shanghai_today()
    text = normalize_code(payload, code_prefix="invoice_qr")
    if any(unicodedata.category(ch) == "Cc" for ch in text):
        raise _malformed()

    fields = text.split(",")
    if len(fields) == _QR_FIELD_COUNT + 1 and fields[-1] == "":
        fields.pop()
    if len(fields) != _QR_FIELD_COUNT:
        raise _malformed()
    version, invoice_type, invoice_code, number, amount, issued, _ignored, check_code = fields

    if version != QR_VERSION or invoice_code != "":
        raise _malformed()
    if not _INVOICE_TYPE_RE.fullmatch(invoice_type):
        raise ValidationError(
            _("The invoice type in the QR code must be two digits."),
            code="invoice_qr.invalid_invoice_type",
        )
    number = _check_invoice_number(number, today)
    total = _parse_amount(amount)
    if total is None:
        raise ValidationError(
            _("The invoice total in the QR code is invalid."),
            code="invoice_qr.invalid_amount",
        )
    issue_date = _parse_issue_date(issued)
    if issue_date is None or issue_date > today:
        raise ValidationError(
            _("The issue date in the QR code is invalid."), code="invoice_qr.invalid_date"
        )
    if not _CHECK_CODE_RE.fullmatch(check_code):
        raise ValidationError(
            _("The check code in the QR code is invalid."),
            code="invoice_qr.invalid_check_code",
        )
    return InvoiceQR(
        version=version,
        invoice_type=invoice_type,
        number=number,
        total=total,
        issue_date=issue_date,
        check_code=check_code,
    )


def _parse_amount(value: str) -> Decimal | None:
    """Parse a plain decimal with at most 2 places in ``(0, MAX_INVOICE_TOTAL]``, else None."""
    if not _AMOUNT_RE.fullmatch(value):
        return None
    amount = Decimal(value)  # exact: the regex admits only plain ASCII decimal literals
    return amount if Decimal(0) < amount <= MAX_INVOICE_TOTAL else None


def _parse_issue_date(value: str) -> date | None:
    """Parse ``YYYYMMDD`` in ASCII digits; ``None`` if malformed or not a real date."""
    if not _DATE_RE.fullmatch(value):
        return None
    try:
        return date(int(value[0:4]), int(value[4:6]), int(value[6:8]))
    except ValueError:
        return None
