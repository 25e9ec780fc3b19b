"""Normalisation of personal data before it is blind-indexed or compared.

Two spellings of the same identity must give the same blind index (`４１０１…` and `4101…`,
`张 三` and `张三`, `x` and `X` as the ID check character), or the uniqueness of one real identity
per consumer would be trivially bypassed.
"""

from __future__ import annotations

import unicodedata

# Middle dots used in transliterated and minority names (e.g. 阿依古丽·买买提).
_NAME_DOTS = str.maketrans({"•": "·", "‧": "·", "∙": "·", "・": "·", ".": "·", "．": "·"})


def normalize_name(value: str) -> str:
    """NFKC, no whitespace, one kind of middle dot: how names on invoices are compared."""
    text = unicodedata.normalize("NFKC", value).translate(_NAME_DOTS)
    return "".join(ch for ch in text if not ch.isspace())


def normalize_identifier(value: str) -> str:
    """ID numbers, phone numbers, accounts: NFKC, no whitespace or dashes, upper case."""
    text = unicodedata.normalize("NFKC", value)
    return "".join(ch for ch in text if not ch.isspace() and ch != "-").upper()


_NORMALIZERS = {
    "name": normalize_name,
    "resident_id": normalize_identifier,
    "phone": normalize_identifier,
    "account": normalize_identifier,
    "coupon_code": normalize_identifier,
}


def normalize_for_index(purpose: str, value: str) -> str:
    try:
        return _NORMALIZERS[purpose](value)
    except KeyError:
        raise ValueError(f"no normaliser for blind-index purpose {purpose!r}") from None
