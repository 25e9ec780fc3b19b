"""Tests for apps.common.normalize (pure functions, no database)."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from hypothesis import given
from hypothesis import strategies as st

from apps.common.normalize import normalize_code, to_halfwidth

FULLWIDTH_RANGE = range(0xFF01, 0xFF5F)


def test_to_halfwidth_maps_every_fullwidth_ascii_variant() -> None:
    for codepoint in FULLWIDTH_RANGE:
        assert to_halfwidth(chr(codepoint)) == chr(codepoint - 0xFEE0)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("０１２３４５６７８９", "0123456789"),
        ("ＡＢＣＸＹＺ", "ABCXYZ"),
        ("ａｂｃｘｙｚ", "abcxyz"),
        ("０１，３２，，", "01,32,,"),  # full-width comma U+FF0C
        ("\u3000ABC\u3000", " ABC "),  # ideographic space becomes a plain space
        ("plain ASCII, unchanged!", "plain ASCII, unchanged!"),
    ],
)
def test_to_halfwidth_examples(raw: str, expected: str) -> None:
    assert to_halfwidth(raw) == expected


@pytest.mark.parametrize(
    "untouched",
    [
        "\u0660\u0661\u0669",  # Arabic-Indic digits
        "\u06f0\u06f9",  # Extended Arabic-Indic digits
        "\u2460",  # circled digit one (NFKC would map it to "1")
        "\u00a0\u2003\u200b",  # NBSP, em space, zero-width space
        "\uff00\uff5f\uff61",  # just outside the full-width ASCII block
        "中文ｶﾀｶﾅ",  # CJK and half-width katakana
        "\x00\x1f\x7f",  # control characters
    ],
)
def test_to_halfwidth_leaves_other_characters_alone(untouched: str) -> None:
    assert to_halfwidth(untouched) == untouched


@given(st.text())
def test_to_halfwidth_preserves_length_and_only_touches_its_range(text: str) -> None:
    result = to_halfwidth(text)
    assert len(result) == len(text)
    for before, after in zip(text, result, strict=True):
        if 0xFF01 <= ord(before) <= 0xFF5E:
            assert ord(after) == ord(before) - 0xFEE0
        elif before == "\u3000":
            assert after == " "
        else:
            assert after == before


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("  abc  ", "abc"),
        ("\t\r\nabc\n", "abc"),
        ("\u3000\u3000ＡＢＣ\u3000", "ABC"),
        ("ａｂｃ", "abc"),  # case is left to the individual validators
        ("a b\u3000c", "a b c"),  # internal spaces are kept (validators reject them)
        ("", ""),
        ("\u3000 \t", ""),
    ],
)
def test_normalize_code(raw: str, expected: str) -> None:
    assert normalize_code(raw) == expected


@pytest.mark.parametrize("raw", ["\u00a0abc", "abc\u2003", "\x1cabc", "abc\x85"])
def test_normalize_code_strips_only_ascii_and_ideographic_whitespace(raw: str) -> None:
    assert normalize_code(raw) == raw


@pytest.mark.parametrize("value", [None, 123, 1.5, b"abc", ["abc"], object()])
def test_normalize_code_rejects_non_strings_with_validation_error(value: object) -> None:
    with pytest.raises(ValidationError) as excinfo:
        normalize_code(value)
    assert excinfo.value.code == "code.invalid_type"

    with pytest.raises(ValidationError) as excinfo:
        normalize_code(value, code_prefix="uscc")
    assert excinfo.value.code == "uscc.invalid_type"


def test_normalize_code_accepts_str_subclasses() -> None:
    class Text(str):
        pass

    assert normalize_code(Text(" ＡＢ ")) == "AB"
