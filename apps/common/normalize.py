"""Normalisation of user-typed identifier codes.

Chinese input methods routinely produce full-width ASCII variants (U+FF01..U+FF5E, e.g.
full-width digits and the full-width comma U+FF0C) and the ideographic space (U+3000).
The helpers here fold exactly those characters to their ASCII equivalents and strip
surrounding whitespace.  They deliberately do *not* perform any wider Unicode
normalisation (NFKC would, for example, turn Arabic-Indic digits or circled digits into
ASCII digits); every other non-ASCII character is left untouched so that validators
reject it.
"""

from __future__ import annotations

import string

from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

__all__ = ["normalize_code", "to_halfwidth"]

_FULLWIDTH_FIRST = 0xFF01  # FULLWIDTH EXCLAMATION MARK, maps to "!" (U+0021)
_FULLWIDTH_LAST = 0xFF5E  # FULLWIDTH TILDE, maps to "~" (U+007E)
_FULLWIDTH_OFFSET = 0xFEE0
_IDEOGRAPHIC_SPACE = 0x3000

_HALFWIDTH_TABLE: dict[int, int] = {
    codepoint: codepoint - _FULLWIDTH_OFFSET
    for codepoint in range(_FULLWIDTH_FIRST, _FULLWIDTH_LAST + 1)
}
_HALFWIDTH_TABLE[_IDEOGRAPHIC_SPACE] = ord(" ")

# Only ASCII whitespace is stripped (U+3000 has already become a plain space by then).
# ``str.strip()`` without arguments would also remove e.g. U+001C..U+001F and U+0085.
_STRIP_CHARS = string.whitespace


def to_halfwidth(value: str) -> str:
    """Map full-width ASCII variants (U+FF01..U+FF5E) and U+3000 to ASCII.

    Invariant: the result has the same length as ``value`` and differs from it only at
    positions that held a full-width ASCII variant or an ideographic space.  No other
    character (including other Unicode digits or spaces) is changed.
    """
    return value.translate(_HALFWIDTH_TABLE)


def normalize_code(value: object, *, code_prefix: str = "code") -> str:
    """Return ``value`` folded to half-width and stripped of surrounding whitespace.

    Invariant: for ``str`` input the result equals
    ``to_halfwidth(value).strip(string.whitespace)``; nothing else is altered (no case
    folding, no removal of internal characters).

    Untrusted input of any other type (``None``, ``int``, ``bytes`` …) is rejected with
    ``ValidationError(code=f"{code_prefix}.invalid_type")`` rather than ``TypeError`` so
    that validators can surface it as an ordinary validation failure.
    """
    if not isinstance(value, str):
        raise ValidationError(_("This value must be text."), code=f"{code_prefix}.invalid_type")
    return to_halfwidth(value).strip(_STRIP_CHARS)
