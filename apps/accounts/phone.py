"""Consumers' mobile numbers: one spelling for storage, lookup and the SMS gateway.

People type `+86 138 1234 5678`, `0086-13812345678`, or full-width digits from a Chinese input
method; all of them are the same phone, `13812345678`. Every phone that enters the system (the
sign-in code request, the city app's claims) goes through `normalize_phone`, so one phone has one
blind index and one consumer.
"""

from __future__ import annotations

import re

from django import forms
from django.core.exceptions import ValidationError
from django.utils.text import capfirst
from django.utils.translation import gettext_lazy as _

from apps.common.normalize import to_halfwidth

__all__ = ["MAINLAND_MOBILE", "PhoneField", "normalize_phone", "validate_mainland_mobile"]

# Mainland China mobile numbers: 11 digits, "1" then 3-9 (the carriers' number blocks).
MAINLAND_MOBILE = re.compile(r"^1[3-9]\d{9}$")
# Separators people type inside a number; removed before anything is checked.
_SEPARATORS = re.compile(r"[\s\-()]")
_COUNTRY_PREFIXES = ("+86", "0086")

INVALID_PHONE_CODE = "phone.invalid"


def normalize_phone(value: object) -> str:
    """Fold full-width characters to ASCII, drop spaces, dashes and brackets and the +86 /
    0086 country prefix. The result is not yet known to be valid (see
    `validate_mainland_mobile`)."""
    if not isinstance(value, str):
        return ""
    text = _SEPARATORS.sub("", to_halfwidth(value))
    for prefix in _COUNTRY_PREFIXES:
        if text.startswith(prefix):
            return text[len(prefix) :]
    if len(text) == 13 and text.startswith("86"):
        return text[2:]
    return text


def validate_mainland_mobile(value: object) -> str:
    """The normalised mainland mobile number, or `ValidationError` with code `phone.invalid`."""
    phone = normalize_phone(value)
    if not MAINLAND_MOBILE.fullmatch(phone):
        raise ValidationError(
            _("Enter a mainland China mobile number: 11 digits starting with 1."),
            code=INVALID_PHONE_CODE,
        )
    return phone


class PhoneField(forms.CharField):
    """The phone field of allauth's forms (`AccountAdapter.phone_form_field`): cleans to the
    normalised mainland number instead of allauth's E.164 spelling."""

    def __init__(self, **kwargs):
        kwargs.setdefault("label", capfirst(_("mobile phone")))
        kwargs.setdefault("max_length", 32)
        kwargs.setdefault("widget", forms.TextInput(attrs={"autocomplete": "tel", "type": "tel"}))
        super().__init__(**kwargs)

    def clean(self, value):
        value = super().clean(value)
        if value in self.empty_values:
            return value
        return validate_mainland_mobile(value)
