"""Tests for the unified social credit code validator (GB 32100-2015). No database."""

from __future__ import annotations

import string

import pytest
from django.core.exceptions import ValidationError
from django.utils.functional import Promise
from hypothesis import assume, given
from hypothesis import strategies as st

from apps.common.areas import ZHENGZHOU_AREAS
from apps.merchants.validators import (
    USCC_ALPHABET,
    USCC_WEIGHTS,
    uscc_area_code,
    uscc_check_character,
    validate_uscc,
)

# Published codes of real registered organisations; each check character was verified
# against the algorithm (and, for the first, is the GB 32100 literature example).
REAL_USCCS = [
    "91350100M000100Y43",  # Fuzhou example widely quoted with GB 32100-2015
    "914403001922038216",  # 华为技术有限公司
    "9144030071526726XG",  # 腾讯科技（深圳）有限公司
    "91440300708461136T",  # 深圳市腾讯计算机系统有限公司
    "91110000802100433B",  # 北京百度网讯科技有限公司
    "91110108551385082Q",  # 小米科技有限责任公司
]

# Hand-computed Zhengzhou (金水区 410105) example.  Values v(c): M=21, A=10, B=11.
#   chars   9  1  4  1  0  1  0  5   M   A  4  5  B  1  2  3  4
#   values  9  1  4  1  0  1  0  5  21  10  4  5 11  1  2  3  4
#   weights 1  3  9 27 19 26 16 17  20  29 25 13  8 24 10 30 28
#   products 9+3+36+27+0+26+0+85+420+290+100+65+88+24+20+90+112 = 1395
#   1395 mod 31 = 0 (31 * 45 = 1395)  ->  31 - 0 = 31  ->  31 maps to 0  ->  check "0"
ZHENGZHOU_HAND_COMPUTED = "91410105MA45B12340"

VALID = "91350100M000100Y43"
FULLWIDTH_OFFSET = 0xFEE0


def fullwidth(text: str) -> str:
    return "".join(chr(ord(ch) + FULLWIDTH_OFFSET) if "!" <= ch <= "~" else ch for ch in text)


def assert_rejected(value: object, code: str) -> None:
    with pytest.raises(ValidationError) as excinfo:
        validate_uscc(value)
    assert excinfo.value.code == code


# --- constants ---------------------------------------------------------------------------


def test_alphabet_is_digits_and_letters_without_i_o_z_s_v() -> None:
    assert len(USCC_ALPHABET) == 31
    assert len(set(USCC_ALPHABET)) == 31
    expected_letters = [c for c in string.ascii_uppercase if c not in "IOZSV"]
    assert list(USCC_ALPHABET) == list(string.digits) + expected_letters


def test_weights_are_powers_of_three_mod_31() -> None:
    assert tuple(USCC_WEIGHTS) == (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
    assert tuple(USCC_WEIGHTS) == tuple(pow(3, i, 31) for i in range(17))


# --- valid codes ---------------------------------------------------------------------------


@pytest.mark.parametrize("code", REAL_USCCS)
def test_real_codes_validate(code: str) -> None:
    assert uscc_check_character(code[:17]) == code[17]
    assert validate_uscc(code) == code


def test_hand_computed_zhengzhou_code() -> None:
    assert uscc_check_character(ZHENGZHOU_HAND_COMPUTED[:17]) == "0"
    assert validate_uscc(ZHENGZHOU_HAND_COMPUTED) == ZHENGZHOU_HAND_COMPUTED
    assert uscc_area_code(ZHENGZHOU_HAND_COMPUTED) == "410105"
    assert ZHENGZHOU_AREAS[uscc_area_code(ZHENGZHOU_HAND_COMPUTED)] == "金水区"


@pytest.mark.parametrize("area", sorted(ZHENGZHOU_AREAS))
def test_constructed_zhengzhou_codes_validate(area: str) -> None:
    first17 = f"91{area}MA9F0JK1X"
    code = first17 + uscc_check_character(first17)
    assert validate_uscc(code) == code
    assert uscc_area_code(code) == area
    assert area.startswith("4101")


def test_zhengzhou_areas_reference_data() -> None:
    assert len(ZHENGZHOU_AREAS) == 12
    assert ZHENGZHOU_AREAS["410102"] == "中原区"
    assert ZHENGZHOU_AREAS["410122"] == "中牟县"
    assert ZHENGZHOU_AREAS["410185"] == "登封市"
    assert all(len(code) == 6 and code.startswith("4101") for code in ZHENGZHOU_AREAS)


@pytest.mark.parametrize(
    "raw",
    [
        "91350100m000100y43",  # lower case
        "91350100M000100y43",
        fullwidth("91350100M000100Y43"),
        fullwidth("91350100m000100y43"),
        "  91350100M000100Y43\t\n",
        "\u300091350100M000100Y43\u3000",
        "\u3000 " + fullwidth("9135") + "0100M000100Y43 \u3000",
    ],
)
def test_normalisation_accepted(raw: str) -> None:
    assert validate_uscc(raw) == VALID


# --- invalid codes -----------------------------------------------------------------------


@pytest.mark.parametrize("value", [None, 91350100, 9.1, b"91350100M000100Y43", ["x"]])
def test_invalid_type(value: object) -> None:
    assert_rejected(value, "uscc.invalid_type")


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "   ",
        "\u3000",
        VALID[:17],
        VALID + "0",
        "9135 0100M000100Y43",  # internal space makes it 19 characters
        "9135-0100-M000100Y43",
        "\u00a091350100M000100Y43",  # NBSP is not stripped
        "91350100M000100Y43\x00",
    ],
)
def test_invalid_length(raw: str) -> None:
    assert_rejected(raw, "uscc.invalid_length")


@pytest.mark.parametrize("letter", ["I", "O", "Z", "S", "V", "i", "o", "z", "s", "v"])
@pytest.mark.parametrize("position", [0, 1, 8, 16, 17])
def test_excluded_letters_rejected(letter: str, position: int) -> None:
    code = VALID[:position] + letter + VALID[position + 1 :]
    assert_rejected(code, "uscc.invalid_character")


@pytest.mark.parametrize(
    "raw",
    [
        "91350100 000100Y43",  # internal space replacing a character
        "91350100M\u300000100Y43",  # ideographic space inside
        "\u0669\u0661350100M000100Y43",  # Arabic-Indic 9 and 1
        "\u06f9\u06f1350100M000100Y43",  # Extended Arabic-Indic digits
        "\u2468\u2460350100M000100Y43",  # circled digits
        "91350100M000100Y4\x7f",
        "91350100M000100\tY4",  # internal tab
        "91350100Ｍ000100Y4-",
        "9135０100M000100Y4é",
        "91350100M000100Y4中",
        "91350100\u212a000100Y43",  # KELVIN SIGN, lower() is ASCII k
        "913501ß0M000100Y4",  # 17 chars; upper() would make it 18
    ],
)
def test_invalid_characters(raw: str) -> None:
    with pytest.raises(ValidationError) as excinfo:
        validate_uscc(raw)
    assert excinfo.value.code in {"uscc.invalid_character", "uscc.invalid_length"}
    if len(raw) == 18:
        assert excinfo.value.code == "uscc.invalid_character"


@pytest.mark.parametrize("check", [c for c in USCC_ALPHABET if c != "3"])
def test_every_wrong_check_character_rejected(check: str) -> None:
    assert_rejected(VALID[:17] + check, "uscc.bad_check_character")


@pytest.mark.parametrize("code", REAL_USCCS)
def test_adjacent_transposition_detected_when_characters_differ(code: str) -> None:
    for i in range(16):
        if code[i] != code[i + 1]:
            swapped = code[:i] + code[i + 1] + code[i] + code[i + 2 :]
            assert_rejected(swapped, "uscc.bad_check_character")


def test_error_messages_are_lazy_translations() -> None:
    with pytest.raises(ValidationError) as excinfo:
        validate_uscc("123")
    assert isinstance(excinfo.value.message, Promise)


# --- helpers -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad", ["", "9135010", "91350100M000100Y43", "91350100M000100Yi", "91350100m000100y4"]
)
def test_check_character_requires_17_normalised_characters(bad: str) -> None:
    with pytest.raises(ValueError):
        uscc_check_character(bad)


def test_area_code_validates_first() -> None:
    assert uscc_area_code(" 91350100m000100y43 ") == "350100"
    with pytest.raises(ValidationError) as excinfo:
        uscc_area_code("91350100M000100Y44")
    assert excinfo.value.code == "uscc.bad_check_character"


# --- properties ----------------------------------------------------------------------------

first17_strategy = st.text(alphabet=USCC_ALPHABET, min_size=17, max_size=17)

# Broad replacement alphabet: ASCII printable, full-width ASCII, assorted Unicode.
replacement_strategy = st.one_of(
    st.sampled_from(string.printable),
    st.sampled_from([chr(cp) for cp in range(0xFF01, 0xFF5F)] + ["\u3000"]),
    st.characters(codec="utf-8"),
)


def equivalents(char: str) -> set[str]:
    """Characters that legitimately normalise to ``char`` (case and full-width forms)."""
    forms = {char, char.lower()}
    return forms | {chr(ord(form) + FULLWIDTH_OFFSET) for form in forms}


@given(first17_strategy)
def test_property_generated_codes_validate(first17: str) -> None:
    code = first17 + uscc_check_character(first17)
    assert validate_uscc(code) == code
    assert validate_uscc(fullwidth(code.lower())) == code


@given(first17_strategy, st.integers(min_value=0, max_value=17), replacement_strategy)
def test_property_single_substitution_rejected(first17: str, position: int, char: str) -> None:
    code = first17 + uscc_check_character(first17)
    assume(char not in equivalents(code[position]))
    mutated = code[:position] + char + code[position + 1 :]
    with pytest.raises(ValidationError) as excinfo:
        validate_uscc(mutated)
    assert excinfo.value.code.startswith("uscc.")


def test_exhaustive_single_substitution_of_known_code() -> None:
    candidates = (
        string.printable
        + "".join(chr(cp) for cp in range(0xFF01, 0xFF5F))
        + "\u3000\u00a0\u0660\u0669\u06f5\u2460中ßı"
    )
    for position in range(18):
        for char in candidates:
            if char in equivalents(VALID[position]):
                continue
            mutated = VALID[:position] + char + VALID[position + 1 :]
            with pytest.raises(ValidationError):
                validate_uscc(mutated)
