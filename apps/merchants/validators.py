"""Validation of the unified social credit code (统一社会信用代码, GB 32100-2015).

Structure of the 18-character code::

    position 1      registration authority code (登记管理部门代码)
    position 2      organisation category code (机构类别代码)
    positions 3-8   area code of the registering authority (e.g. Zhengzhou ``4101xx``)
    positions 9-17  entity identifier (主体标识码)
    position 18     check character

Every character is drawn from :data:`USCC_ALPHABET` (digits and upper-case letters except
I, O, Z, S, V); its *value* is its index in that alphabet (0-30).  The check character has
value ``31 - (sum(v(c_i) * w_i for i in 1..17) mod 31)``, where 31 maps to 0.
"""

from __future__ import annotations

from typing import Final

from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from apps.common.normalize import normalize_code

__all__ = [
    "USCC_ALPHABET",
    "USCC_LENGTH",
    "USCC_WEIGHTS",
    "uscc_area_code",
    "uscc_check_character",
    "validate_uscc",
]

USCC_ALPHABET: Final[str] = "0123456789ABCDEFGHJKLMNPQRTUWXY"
USCC_WEIGHTS: Final[tuple[int, ...]] = (
    1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28,
)  # fmt: skip
USCC_LENGTH: Final[int] = 18

_MODULUS: Final[int] = len(USCC_ALPHABET)  # 31
_VALUES: Final[dict[str, int]] = {char: index for index, char in enumerate(USCC_ALPHABET)}
# Lower-case forms are accepted on input and upper-cased after the character check.
_ACCEPTED_CHARACTERS: Final[frozenset[str]] = frozenset(USCC_ALPHABET + USCC_ALPHABET.lower())


def uscc_check_character(first17: str) -> str:
    """Return the check character for the first 17 characters of a USCC.

    ``first17`` must already be normalised: exactly 17 characters of :data:`USCC_ALPHABET`
    (upper case).  Anything else is a programming error and raises ``ValueError``.
    """
    if len(first17) != len(USCC_WEIGHTS) or any(char not in _VALUES for char in first17):
        raise ValueError("first17 must be 17 characters from USCC_ALPHABET")
    total = sum(_VALUES[char] * weight for char, weight in zip(first17, USCC_WEIGHTS, strict=True))
    return USCC_ALPHABET[(_MODULUS - total % _MODULUS) % _MODULUS]


def validate_uscc(value: object) -> str:
    """Validate a unified social credit code and return it normalised.

    Full-width characters are folded to ASCII, surrounding (including ideographic) spaces
    stripped and letters upper-cased.  On success the returned string is exactly 18
    characters of :data:`USCC_ALPHABET` whose last character equals
    ``uscc_check_character(result[:17])``; otherwise ``ValidationError`` is raised with one
    of the codes ``uscc.invalid_type``, ``uscc.invalid_length``,
    ``uscc.invalid_character`` or ``uscc.bad_check_character`` (checked in that order).
    """
    code = normalize_code(value, code_prefix="uscc")
    if len(code) != USCC_LENGTH:
        raise ValidationError(
            _("The unified social credit code must be 18 characters."),
            code="uscc.invalid_length",
        )
    if any(char not in _ACCEPTED_CHARACTERS for char in code):
        raise ValidationError(
            _(
                "The unified social credit code may only contain digits and the letters "
                "A-H, J-N, P-R, T, U, W-Y."
            ),
            code="uscc.invalid_character",
        )
    code = code.upper()  # safe: the string is pure ASCII at this point
    if code[-1] != uscc_check_character(code[:-1]):
        raise ValidationError(
            _("The unified social credit code has an incorrect check character."),
            code="uscc.bad_check_character",
        )
    return code


def uscc_area_code(value: object) -> str:
    """Return characters 3-8 (the registering authority's area code) of a valid USCC.

    ``value`` is validated with :func:`validate_uscc` first, so the same
    ``ValidationError`` codes apply.
    """
    return validate_uscc(value)[2:8]
