"""Tests for the resident identity number validator (GB 11643-1999). No database."""

from __future__ import annotations

import string
from datetime import date, timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils.functional import Promise
from hypothesis import assume, given
from hypothesis import strategies as st

from apps.accounts.validators import (
    resident_id_birth_date,
    resident_id_check_character,
    validate_resident_id,
)
from apps.common.areas import PROVINCE_CODES

TODAY = date(2025, 6, 15)
FULLWIDTH_OFFSET = 0xFEE0

# The example published in GB 11643-1999.
#   digits  1  1  0  1  0  5  1  9  4  9  1  2  3  1  0  0  2
#   weights 7  9 10  5  8  4  2  1  6  3  7  9 10  5  8  4  2
#   7+9+0+5+0+20+2+9+24+27+7+18+30+5+0+0+4 = 167; 167 mod 11 = 2; "10X98765432"[2] = "X"
STANDARD_EXAMPLE = "11010519491231002X"
# Second example from the standard's literature: the check character is correct
# (sum 195, 195 mod 11 = 8 -> "4") but the holder was born in 1880, before 1900-01-01.
BORN_1880 = "440524188001010014"


def make_id(prefix17: str) -> str:
    return prefix17 + resident_id_check_character(prefix17)


def fullwidth(text: str) -> str:
    return "".join(chr(ord(ch) + FULLWIDTH_OFFSET) if "!" <= ch <= "~" else ch for ch in text)


def assert_rejected(value: object, code: str, *, today: date | None = TODAY) -> None:
    with pytest.raises(ValidationError) as excinfo:
        validate_resident_id(value, today=today)
    assert excinfo.value.code == code


# --- check character -----------------------------------------------------------------------


def test_check_character_of_published_examples() -> None:
    assert resident_id_check_character(STANDARD_EXAMPLE[:17]) == "X"
    assert resident_id_check_character(BORN_1880[:17]) == "4"


@pytest.mark.parametrize("bad", ["", "1101051949123100", "110105194912310021", "1101051949123100X"])
def test_check_character_requires_17_ascii_digits(bad: str) -> None:
    with pytest.raises(ValueError):
        resident_id_check_character(bad)


def test_check_character_rejects_non_ascii_digits() -> None:
    with pytest.raises(ValueError):
        resident_id_check_character("\u0661" * 17)


# --- valid numbers -------------------------------------------------------------------------


def test_standard_example_validates() -> None:
    assert validate_resident_id(STANDARD_EXAMPLE, today=TODAY) == STANDARD_EXAMPLE
    assert resident_id_birth_date(STANDARD_EXAMPLE, today=TODAY) == date(1949, 12, 31)


def test_standard_example_validates_with_default_today() -> None:
    assert validate_resident_id(STANDARD_EXAMPLE) == STANDARD_EXAMPLE
    assert resident_id_birth_date(STANDARD_EXAMPLE) == date(1949, 12, 31)


def test_example_born_before_1900_is_rejected() -> None:
    assert_rejected(BORN_1880, "resident_id.invalid_birth_date")


@pytest.mark.parametrize(
    "prefix17",
    [
        "41010519900101123",  # 郑州金水区
        "41018220000229002",  # leap day
        "65010219000101001",  # earliest allowed birth date
        "82000120250614999",  # the day before TODAY
        "71000019991231000",
        "81000019800615001",
    ],
)
def test_constructed_numbers_validate(prefix17: str) -> None:
    number = make_id(prefix17)
    assert validate_resident_id(number, today=TODAY) == number
    birth = prefix17[6:14]
    expected = date(int(birth[:4]), int(birth[4:6]), int(birth[6:]))
    assert resident_id_birth_date(number, today=TODAY) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "11010519491231002x",
        fullwidth("11010519491231002X"),
        fullwidth("11010519491231002x"),
        "  11010519491231002X\n",
        "\u300011010519491231002x\u3000",
        fullwidth("110105") + "19491231002ｘ",
    ],
)
def test_normalisation_accepted(raw: str) -> None:
    assert validate_resident_id(raw, today=TODAY) == STANDARD_EXAMPLE


# --- invalid numbers ---------------------------------------------------------------------


@pytest.mark.parametrize("value", [None, 11010519491231002, 1.0, b"11010519491231002X", ()])
def test_invalid_type(value: object) -> None:
    assert_rejected(value, "resident_id.invalid_type")


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "   ",
        "110105491231002",  # 15-digit first-generation number
        STANDARD_EXAMPLE[:17],
        STANDARD_EXAMPLE + "0",
        "110105 19491231002X",  # internal space
        "110105-19491231-002X",
        "\u00a011010519491231002X",
    ],
)
def test_invalid_length(raw: str) -> None:
    assert_rejected(raw, "resident_id.invalid_length")


@pytest.mark.parametrize(
    "raw",
    [
        "X1010519491231002X",
        "1101051949123100XX",  # X only allowed as the check character
        "11010519491231002Y",
        "1101051949 231002X",  # internal space
        "1101051949123\u3000002X",  # internal ideographic space
        "\u0661\u0661010519491231002X",  # Arabic-Indic digits
        "\u06f1\u06f1010519491231002X",  # Extended Arabic-Indic digits
        "11010519491231002\u2169",  # ROMAN NUMERAL TEN
        "1101051949123100\x002",
        "11010519491231002中",
        "１１０１０５１９４９１２３１００２Ｙ",
    ],
)
def test_invalid_characters(raw: str) -> None:
    assert_rejected(raw, "resident_id.invalid_character")


NON_PROVINCE_CODES = [f"{n:02d}" for n in range(100) if f"{n:02d}" not in PROVINCE_CODES]


def test_province_code_table() -> None:
    assert len(NON_PROVINCE_CODES) == 100 - 34
    assert {"11", "41", "65", "71", "81", "82"} <= PROVINCE_CODES
    assert {"00", "10", "16", "20", "24", "47", "66", "70", "83", "99"} <= set(NON_PROVINCE_CODES)


@pytest.mark.parametrize("province", NON_PROVINCE_CODES)
def test_invalid_province(province: str) -> None:
    assert_rejected(make_id(province + "010519491231002"), "resident_id.invalid_area")


@pytest.mark.parametrize(
    "birth",
    [
        "19990230",  # February 30th
        "20230229",  # 2023 is not a leap year
        "19000229",  # 1900 is not a leap year
        "19991301",
        "19990001",
        "19990100",
        "19990431",
        "00000000",
        "18991231",  # before 1900-01-01
        "18800101",
        "20250615",  # TODAY is not in the past
        "20250616",  # future
        "20991231",
    ],
)
def test_invalid_birth_date(birth: str) -> None:
    assert_rejected(make_id(f"410105{birth}123"), "resident_id.invalid_birth_date")


def test_birth_date_boundaries_follow_today() -> None:
    number = make_id("41010520250614123")
    assert validate_resident_id(number, today=TODAY) == number
    assert_rejected(number, "resident_id.invalid_birth_date", today=date(2025, 6, 14))
    assert_rejected(number, "resident_id.invalid_birth_date", today=date(2020, 1, 1))


@pytest.mark.parametrize("check", [c for c in "0123456789X" if c != "X"])
def test_every_wrong_check_character_rejected(check: str) -> None:
    assert_rejected(STANDARD_EXAMPLE[:17] + check, "resident_id.bad_check_character")


def test_birth_date_helper_validates_first() -> None:
    with pytest.raises(ValidationError) as excinfo:
        resident_id_birth_date("110105194912310021", today=TODAY)
    assert excinfo.value.code == "resident_id.bad_check_character"


def test_error_messages_are_lazy_translations() -> None:
    with pytest.raises(ValidationError) as excinfo:
        validate_resident_id("1", today=TODAY)
    assert isinstance(excinfo.value.message, Promise)


# --- properties ----------------------------------------------------------------------------

EARLIEST = date(1900, 1, 1)


@st.composite
def valid_ids(draw: st.DrawFn) -> str:
    province = draw(st.sampled_from(sorted(PROVINCE_CODES)))
    rest_of_area = draw(st.text(alphabet=string.digits, min_size=4, max_size=4))
    birth = draw(st.dates(min_value=EARLIEST, max_value=TODAY - timedelta(days=1)))
    sequence = draw(st.text(alphabet=string.digits, min_size=3, max_size=3))
    return make_id(f"{province}{rest_of_area}{birth:%Y%m%d}{sequence}")


replacement_strategy = st.one_of(
    st.sampled_from(string.printable),
    st.sampled_from([chr(cp) for cp in range(0xFF01, 0xFF5F)] + ["\u3000"]),
    st.characters(codec="utf-8"),
)


def equivalents(char: str) -> set[str]:
    """Characters that legitimately normalise to ``char`` (case and full-width forms)."""
    forms = {char, char.lower()}
    return forms | {chr(ord(form) + FULLWIDTH_OFFSET) for form in forms}


@given(valid_ids())
def test_property_generated_numbers_validate(number: str) -> None:
    assert validate_resident_id(number, today=TODAY) == number
    assert validate_resident_id(fullwidth(number.lower()), today=TODAY) == number
    birth = resident_id_birth_date(number, today=TODAY)
    assert f"{birth:%Y%m%d}" == number[6:14]


@given(valid_ids(), st.integers(min_value=0, max_value=17), replacement_strategy)
def test_property_single_substitution_rejected(number: str, position: int, char: str) -> None:
    assume(char not in equivalents(number[position]))
    mutated = number[:position] + char + number[position + 1 :]
    with pytest.raises(ValidationError) as excinfo:
        validate_resident_id(mutated, today=TODAY)
    assert excinfo.value.code.startswith("resident_id.")


def test_exhaustive_single_substitution_of_standard_example() -> None:
    candidates = (
        string.printable
        + "".join(chr(cp) for cp in range(0xFF01, 0xFF5F))
        + "\u3000\u00a0\u0660\u0669\u06f5\u2460中"
    )
    for position in range(18):
        for char in candidates:
            if char in equivalents(STANDARD_EXAMPLE[position]):
                continue
            mutated = STANDARD_EXAMPLE[:position] + char + STANDARD_EXAMPLE[position + 1 :]
            with pytest.raises(ValidationError):
                validate_resident_id(mutated, today=TODAY)
