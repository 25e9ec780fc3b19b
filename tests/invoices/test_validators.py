"""Tests for 数电发票 number and QR payload validation. No database."""

from __future__ import annotations

import dataclasses
import string
from datetime import date
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.utils.functional import Promise
from hypothesis import given
from hypothesis import strategies as st

from apps.common.normalize import to_halfwidth
from apps.invoices.validators import (
    PROVINCE_CODES,
    InvoiceQR,
    parse_invoice_qr,
    validate_invoice_number,
)

TODAY = date(2025, 6, 15)
FULLWIDTH_OFFSET = 0xFEE0
NUMBER = "24412000000000123456"  # 2024, 河南 (41), channel 2, sequence ...123456
CHECK_CODE = "12345678901234567890"


def fullwidth(text: str) -> str:
    return "".join(chr(ord(ch) + FULLWIDTH_OFFSET) if "!" <= ch <= "~" else ch for ch in text)


def payload(
    *,
    version: str = "01",
    invoice_type: str = "32",
    code: str = "",
    number: str = NUMBER,
    amount: str = "1234.50",
    issued: str = "20240501",
    ignored: str = "",
    check_code: str = CHECK_CODE,
) -> str:
    return ",".join([version, invoice_type, code, number, amount, issued, ignored, check_code])


def assert_number_rejected(value: object, code: str, *, today: date | None = TODAY) -> None:
    with pytest.raises(ValidationError) as excinfo:
        validate_invoice_number(value, today=today)
    assert excinfo.value.code == code


def assert_qr_rejected(value: object, code: str, *, today: date | None = TODAY) -> None:
    with pytest.raises(ValidationError) as excinfo:
        parse_invoice_qr(value, today=today)
    assert excinfo.value.code == code


# --- province codes ------------------------------------------------------------------------


def test_province_codes() -> None:
    expected = {
        *(str(n) for n in range(11, 16)),
        *(str(n) for n in range(21, 24)),
        *(str(n) for n in range(31, 38)),
        *(str(n) for n in range(41, 47)),
        *(str(n) for n in range(50, 55)),
        *(str(n) for n in range(61, 66)),
        "71",
        "81",
        "82",
    }
    assert isinstance(PROVINCE_CODES, frozenset)
    assert expected == PROVINCE_CODES
    assert len(PROVINCE_CODES) == 34


# --- invoice number ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "number",
    [
        NUMBER,
        "21110000000000000001",  # earliest year, Beijing
        "25820999999999999999",  # current year (TODAY), Macao
        "23650100000000000000",
        "24710000000000000000",
    ],
)
def test_valid_numbers(number: str) -> None:
    assert validate_invoice_number(number, today=TODAY) == number


def test_valid_number_with_default_today() -> None:
    assert validate_invoice_number("21410000000000000001") == "21410000000000000001"


@pytest.mark.parametrize(
    "raw", [fullwidth(NUMBER), f"  {NUMBER}\n", f"\u3000{NUMBER}\u3000", "２４４１" + NUMBER[4:]]
)
def test_number_normalisation_accepted(raw: str) -> None:
    assert validate_invoice_number(raw, today=TODAY) == NUMBER


@pytest.mark.parametrize("value", [None, int(NUMBER), Decimal(NUMBER), NUMBER.encode(), [NUMBER]])
def test_number_invalid_type(value: object) -> None:
    assert_number_rejected(value, "invoice_number.invalid_type")


@pytest.mark.parametrize(
    "raw", ["", "   ", NUMBER[:19], NUMBER + "0", "2441 2000000000123456", NUMBER[:12]]
)
def test_number_invalid_length(raw: str) -> None:
    assert_number_rejected(raw, "invoice_number.invalid_length")


@pytest.mark.parametrize(
    "raw",
    [
        "2441200000000012345A",
        "2441200000000012345a",
        "24412000000000 23456",  # internal space
        "24412000000000\u300023456",  # internal ideographic space
        "\u0662\u0664412000000000123456",  # Arabic-Indic digits
        "\u06f2\u06f4412000000000123456",
        "24412000000000-23456",
        "244120000000001234.6",
        "+4412000000000123456",
        "2441200000000012345\u2464",  # circled digit five
        "2441200000000012345\x00",
    ],
)
def test_number_invalid_character(raw: str) -> None:
    assert_number_rejected(raw, "invoice_number.invalid_character")


@pytest.mark.parametrize("year", ["00", "19", "20", "26", "30", "99"])
def test_number_invalid_year(year: str) -> None:
    assert_number_rejected(year + NUMBER[2:], "invoice_number.invalid_year")


def test_number_year_follows_today() -> None:
    assert_number_rejected(NUMBER, "invoice_number.invalid_year", today=date(2023, 12, 31))
    assert validate_invoice_number(NUMBER, today=date(2024, 1, 1)) == NUMBER


@pytest.mark.parametrize("province", ["00", "10", "16", "20", "24", "40", "47", "70", "83", "99"])
def test_number_invalid_province(province: str) -> None:
    assert_number_rejected(NUMBER[:2] + province + NUMBER[4:], "invoice_number.invalid_province")


def test_error_messages_are_lazy_translations() -> None:
    with pytest.raises(ValidationError) as excinfo:
        validate_invoice_number("1", today=TODAY)
    assert isinstance(excinfo.value.message, Promise)


# --- QR payload: valid ---------------------------------------------------------------------

EXPECTED = InvoiceQR(
    version="01",
    invoice_type="32",
    number=NUMBER,
    total=Decimal("1234.50"),
    issue_date=date(2024, 5, 1),
    check_code=CHECK_CODE,
)


def test_valid_payload() -> None:
    raw = f"01,32,,{NUMBER},1234.50,20240501,,{CHECK_CODE}"
    assert raw == payload()
    result = parse_invoice_qr(raw, today=TODAY)
    assert result == EXPECTED
    assert isinstance(result.total, Decimal)
    assert result.total.as_tuple() == Decimal("1234.50").as_tuple()


def test_result_is_frozen() -> None:
    result = parse_invoice_qr(payload(), today=TODAY)
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.total = Decimal("1")  # type: ignore[misc]


def test_valid_payload_with_default_today() -> None:
    raw = payload(number="21410000000000000001", issued="20210101")
    assert parse_invoice_qr(raw).issue_date == date(2021, 1, 1)


@pytest.mark.parametrize(
    "raw",
    [
        payload() + ",",  # tolerated trailing empty 9th field
        payload().replace(",", "，"),  # full-width commas
        payload().replace(",", "，") + "，",
        fullwidth(payload()),
        f"  {payload()}\n",
        f"\u3000{payload()},\u3000",
        payload(ignored="anything-goes 中文 ！"),  # field 7 is ignored
    ],
)
def test_payload_variants_accepted(raw: str) -> None:
    assert parse_invoice_qr(raw, today=TODAY) == EXPECTED


def test_special_invoice_type_and_other_two_digit_types() -> None:
    assert parse_invoice_qr(payload(invoice_type="31"), today=TODAY).invoice_type == "31"
    assert parse_invoice_qr(payload(invoice_type="09"), today=TODAY).invoice_type == "09"


@pytest.mark.parametrize(
    ("amount", "expected"),
    [
        ("0.01", Decimal("0.01")),
        ("1", Decimal("1")),
        ("1.5", Decimal("1.5")),
        ("100.00", Decimal("100.00")),
        ("0.10", Decimal("0.10")),
        ("99999999999.99", Decimal("99999999999.99")),
        ("１２.３４", Decimal("12.34")),
    ],
)
def test_valid_amounts(amount: str, expected: Decimal) -> None:
    total = parse_invoice_qr(payload(amount=amount), today=TODAY).total
    assert total == expected
    assert isinstance(total, Decimal)


@pytest.mark.parametrize("check_code", ["", "a", "AbC123", "9" * 64, "x" * 64])
def test_valid_check_codes(check_code: str) -> None:
    assert parse_invoice_qr(payload(check_code=check_code), today=TODAY).check_code == check_code


def test_issue_date_today_accepted() -> None:
    assert parse_invoice_qr(payload(issued="20250615"), today=TODAY).issue_date == TODAY


def test_payload_of_exactly_512_characters_accepted() -> None:
    base = payload()
    raw = payload(ignored="x" * (512 - len(base)))
    assert len(raw) == 512
    assert parse_invoice_qr(raw, today=TODAY) == EXPECTED


# --- QR payload: invalid -------------------------------------------------------------------


@pytest.mark.parametrize("value", [None, 1, payload().encode(), [payload()], {"a": 1}])
def test_qr_invalid_type(value: object) -> None:
    assert_qr_rejected(value, "invoice_qr.invalid_type")


@pytest.mark.parametrize(
    "raw",
    [
        payload(ignored="x" * (513 - len(payload()))),
        " " * 513,
        "9" * 10_000,
    ],
)
def test_qr_too_long(raw: str) -> None:
    assert len(raw) > 512
    assert_qr_rejected(raw, "invoice_qr.too_long")


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "01",
        ",,,,,,,",  # eight empty fields
        "01,32,," + NUMBER + ",1234.50,20240501,",  # seven fields
        payload() + ",x",  # non-empty ninth field
        payload() + ",,",  # ten fields
        payload() + ",\u3000,",
        payload(version="02"),
        payload(version="1"),
        payload(version="001"),
        payload(version=""),
        payload(version="01 "),
        payload(code="044001900111"),  # 数电 invoices have no invoice code
        payload(code=" "),
        payload(ignored="tab\there"),  # control characters are never accepted
        payload(ignored="\x00"),
        payload().replace(",", ";"),
        payload().replace(",", "\u3001"),  # ideographic comma is not a separator
    ],
)
def test_qr_malformed(raw: str) -> None:
    assert_qr_rejected(raw, "invoice_qr.malformed")


@pytest.mark.parametrize("invoice_type", ["", "3", "032", "3a", "ab", " 32", "\u0663\u0662", "3 "])
def test_qr_invalid_invoice_type(invoice_type: str) -> None:
    assert_qr_rejected(payload(invoice_type=invoice_type), "invoice_qr.invalid_invoice_type")


@pytest.mark.parametrize(
    ("number", "code"),
    [
        (NUMBER[:19], "invoice_number.invalid_length"),
        (f" {NUMBER}", "invoice_number.invalid_length"),  # no stripping inside fields
        ("", "invoice_number.invalid_length"),
        (NUMBER[:19] + "A", "invoice_number.invalid_character"),
        ("\u0662" + NUMBER[1:], "invoice_number.invalid_character"),
        ("20" + NUMBER[2:], "invoice_number.invalid_year"),
        ("26" + NUMBER[2:], "invoice_number.invalid_year"),
        (NUMBER[:2] + "99" + NUMBER[4:], "invoice_number.invalid_province"),
    ],
)
def test_qr_invalid_number_propagates(number: str, code: str) -> None:
    assert_qr_rejected(payload(number=number), code)


@pytest.mark.parametrize(
    "amount",
    [
        "",
        "0",
        "0.00",
        "-1",
        "-0.01",
        "+1",
        "1.001",
        "1.",
        ".5",
        "01.00",
        "00",
        "1e3",
        "1E3",
        "NaN",
        "Infinity",
        "inf",
        "100000000000.00",  # exceeds 99,999,999,999.99
        "100000000000",
        "1 000",
        " 5",
        "5 ",
        "1_000",
        "\u0661\u0662",  # Arabic-Indic digits
        "1.5\u00a0",
        "0x10",
    ],
)
def test_qr_invalid_amount(amount: str) -> None:
    assert_qr_rejected(payload(amount=amount), "invoice_qr.invalid_amount")


@pytest.mark.parametrize(
    "issued",
    [
        "",
        "2024051",
        "202405011",
        "2024-05-01",
        "20240230",
        "20230229",
        "20241301",
        "20240100",
        "00000000",
        "20250616",  # the day after TODAY
        "20991231",
        "\u0662\u0660\u0662\u0664\u0660\u0665\u0660\u0661",
        " 20240501",
    ],
)
def test_qr_invalid_date(issued: str) -> None:
    assert_qr_rejected(payload(issued=issued), "invoice_qr.invalid_date")


@pytest.mark.parametrize(
    "check_code",
    ["a" * 65, "abc-123", "abc 123", "中文", "\u0661\u0662", "abc_123", "ä", "+/="],
)
def test_qr_invalid_check_code(check_code: str) -> None:
    assert_qr_rejected(payload(check_code=check_code), "invoice_qr.invalid_check_code")


# --- properties ----------------------------------------------------------------------------


@st.composite
def valid_numbers(draw: st.DrawFn) -> str:
    year = draw(st.integers(min_value=21, max_value=TODAY.year % 100))
    province = draw(st.sampled_from(sorted(PROVINCE_CODES)))
    rest = draw(st.text(alphabet=string.digits, min_size=16, max_size=16))
    return f"{year:02d}{province}{rest}"


non_digit_strategy = st.one_of(
    st.sampled_from(string.ascii_letters + string.punctuation + string.whitespace),
    st.sampled_from([chr(cp) for cp in range(0xFF01, 0xFF5F)] + ["\u3000"]),
    st.characters(codec="utf-8"),
).filter(lambda ch: to_halfwidth(ch) not in string.digits)


@given(valid_numbers())
def test_property_generated_numbers_validate(number: str) -> None:
    assert validate_invoice_number(number, today=TODAY) == number
    assert validate_invoice_number(fullwidth(number), today=TODAY) == number


@given(valid_numbers(), st.integers(min_value=0, max_value=19), non_digit_strategy)
def test_property_non_digit_substitution_rejected(number: str, position: int, char: str) -> None:
    mutated = number[:position] + char + number[position + 1 :]
    with pytest.raises(ValidationError) as excinfo:
        validate_invoice_number(mutated, today=TODAY)
    assert excinfo.value.code in {
        "invoice_number.invalid_character",
        "invoice_number.invalid_length",  # a whitespace replacement at either end is stripped
    }


@given(
    invoice_type=st.text(alphabet=string.digits, min_size=2, max_size=2),
    number=valid_numbers(),
    total=st.decimals(
        min_value=Decimal("0.01"),
        max_value=Decimal("99999999999.99"),
        places=2,
        allow_nan=False,
        allow_infinity=False,
    ),
    issue_date=st.dates(min_value=date(2021, 1, 1), max_value=TODAY),
    ignored=st.text(
        alphabet=st.characters(codec="utf-8", exclude_categories=["Cc", "Cs", "Zs", "Zl", "Zp"])
    ).filter(lambda text: "," not in text and "，" not in text),
    check_code=st.text(alphabet=string.ascii_letters + string.digits, max_size=64),
    separator=st.sampled_from([",", "，"]),
    trailing=st.booleans(),
)
def test_property_qr_round_trip(
    invoice_type: str,
    number: str,
    total: Decimal,
    issue_date: date,
    ignored: str,
    check_code: str,
    separator: str,
    trailing: bool,
) -> None:
    fields = [
        "01",
        invoice_type,
        "",
        number,
        format(total, "f"),
        f"{issue_date:%Y%m%d}",
        ignored,
        check_code,
    ]
    raw = separator.join(fields) + (separator if trailing else "")
    if len(raw) > 512:
        assert_qr_rejected(raw, "invoice_qr.too_long")
        return
    assert parse_invoice_qr(raw, today=TODAY) == InvoiceQR(
        version="01",
        invoice_type=invoice_type,
        number=number,
        total=total,
        issue_date=issue_date,
        check_code=check_code,
    )


def test_qr_does_not_use_float() -> None:
    # 0.1 + 0.2 style binary rounding would show up as a mismatch here.
    assert parse_invoice_qr(payload(amount="0.30"), today=TODAY).total == Decimal("0.30")
    assert parse_invoice_qr(payload(amount="99999999999.99"), today=TODAY).total == Decimal(
        "99999999999.99"
    )
