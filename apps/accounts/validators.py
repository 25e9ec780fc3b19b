"""Validation of the resident identity card number (居民身份证号码, GB 11643-1999).

Structure of the 18-character number::

    positions 1-6    area code of permanent residence at issue (first two: province)
    positions 7-14   birth date, YYYYMMDD
    positions 15-17  sequence code (odd for men, even for women)
    position 18      check character, ISO 7064 MOD 11-2

The check character is ``"10X98765432"[sum(d_i * w_i for i in 1..17) mod 11]``.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Final
from zoneinfo import ZoneInfo

from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from apps.common.areas import PROVINCE_CODES
from apps.common.normalize import normalize_code

__all__ = [
    "EARLIEST_BIRTH_DATE",
    "RESIDENT_ID_LENGTH",
    "RESIDENT_ID_WEIGHTS",
    "resident_id_birth_date",
    "resident_id_check_character",
    "validate_resident_id",
]

RESIDENT_ID_LENGTH: Final[int] = 18
RESIDENT_ID_WEIGHTS: Final[tuple[int, ...]] = (
    7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2,
)  # fmt: skip
EARLIEST_BIRTH_DATE: Final[date] = date(1900, 1, 1)

_CHECK_CHARACTERS: Final[str] = "10X98765432"
_DIGITS: Final[frozenset[str]] = frozenset("0123456789")
_CHECK_ACCEPTED: Final[frozenset[str]] = frozenset("0123456789Xx")
_TIMEZONE: Final[ZoneInfo] = ZoneInfo("Asia/Shanghai")


def _shanghai_today() -> date:
    """Today's date in China; independent of Django settings."""
    return datetime.now(_TIMEZONE).date()


def resident_id_check_character(first17: str) -> str:
    """Return the ISO 7064 MOD 11-2 check character ("0"-"9" or "X") for 17 ASCII digits.

    Anything other than exactly 17 ASCII digits is a programming error and raises
    ``ValueError``.
    """
    if len(first17) != len(RESIDENT_ID_WEIGHTS) or any(ch not in _DIGITS for ch in first17):
        raise ValueError("first17 must be 17 ASCII digits")
    total = sum(
        int(digit) * weight for digit, weight in zip(first17, RESIDENT_ID_WEIGHTS, strict=True)
    )
    return _CHECK_CHARACTERS[total % 11]


def _parse_birth_date(digits: str) -> date | None:
    """Parse ``YYYYMMDD`` (already known to be ASCII digits); ``None`` if not a real date."""
    try:
        return date(int(digits[0:4]), int(digits[4:6]), int(digits[6:8]))
    except ValueError:
        return None


def validate_resident_id(value: object, *, today: date | None = None) -> str:
    """Validate an 18-digit resident identity number and return it normalised.

    Full-width characters are folded to ASCII, surrounding (including ideographic) spaces
    stripped and a lower-case ``x`` check character upper-cased.  On success the result is
    17 ASCII digits followed by a digit or ``X`` such that:

    * the first two digits are in :data:`~apps.common.areas.PROVINCE_CODES`;
    * digits 7-14 form a real calendar date ``d`` with
      ``EARLIEST_BIRTH_DATE <= d < today`` (``today`` defaults to the current date in
      Asia/Shanghai);
    * the last character equals ``resident_id_check_character(result[:17])``.

    Otherwise ``ValidationError`` is raised with one of the codes (checked in this order)
    ``resident_id.invalid_type``, ``resident_id.invalid_length``,
    ``resident_id.invalid_character``, ``resident_id.invalid_area``,
    ``resident_id.invalid_birth_date`` or ``resident_id.bad_check_character``.
    """
    number = normalize_code(value, code_prefix="resident_id")
    if len(number) != RESIDENT_ID_LENGTH:
        raise ValidationError(
            _("The resident identity number must be 18 characters."),
            code="resident_id.invalid_length",
        )
    if any(ch not in _DIGITS for ch in number[:-1]) or number[-1] not in _CHECK_ACCEPTED:
        raise ValidationError(
            _(
                "The resident identity number must be 17 digits followed by a digit or "
                "the letter X."
            ),
            code="resident_id.invalid_character",
        )
    number = number.upper()  # safe: the string is pure ASCII at this point
    if number[:2] not in PROVINCE_CODES:
        raise ValidationError(
            _("The resident identity number has an invalid area code."),
            code="resident_id.invalid_area",
        )
    birth_date = _parse_birth_date(number[6:14])
    if today is None:
        today = _shanghai_today()
    if birth_date is None or not EARLIEST_BIRTH_DATE <= birth_date < today:
        raise ValidationError(
            _("The resident identity number contains an invalid birth date."),
            code="resident_id.invalid_birth_date",
        )
    if number[-1] != resident_id_check_character(number[:-1]):
        raise ValidationError(
            _("The resident identity number has an incorrect check character."),
            code="resident_id.bad_check_character",
        )
    return number


def resident_id_birth_date(value: object, *, today: date | None = None) -> date:
    """Return the birth date encoded in a valid resident identity number.

    ``value`` is validated with :func:`validate_resident_id` first (same ``today``
    semantics), so the same ``ValidationError`` codes apply.
    """
    number = validate_resident_id(value, today=today)
    return date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
