"""Helpers of tests/e2e/test_staff_day.py: the steps of the staff day that are not already
helpers of the other browser tests (those are imported from there, not copied)."""

from __future__ import annotations

import itertools
from datetime import datetime

from django.utils import timezone
from rest_framework.test import APIClient

_keys = itertools.count(1)


def fill_datetime(page, field: str, moment: datetime) -> None:
    """Fill one of the admin's split date/time widgets (`#id_<field>_0` and `_1`)."""
    local = timezone.localtime(moment)
    page.fill(f"#id_{field}_0", local.strftime("%Y-%m-%d"))
    page.fill(f"#id_{field}_1", local.strftime("%H:%M:%S"))


def add_inline_row(page, group: str, index: int, values: dict[str, str]) -> None:
    """Add a row to a tabular inline (`#<group>-group`) and fill it: {field suffix: value};
    a select gets the option of that value, a checkbox is checked when the value is "on"."""
    inline = page.locator(f"#{group}-group")
    inline.locator(".add-row a").click()
    row = inline.locator(f"tr#{group}-{index}")
    for name, value in values.items():
        field = row.locator(f"[name$='-{name}']")
        tag = field.evaluate("e => e.tagName + ':' + (e.type || '')")
        if tag.startswith("SELECT"):
            field.select_option(value)
        elif tag.endswith(":checkbox"):
            field.set_checked(value == "on")
        else:
            field.fill(value)


def save_and_continue(page) -> None:
    """Press 保存并继续编辑 and wait for the change page with its success message; a form
    error fails the test with the errors on screen."""
    page.click("input[name=_continue]")
    page.wait_for_load_state()
    if page.locator(".messagelist .success").count() == 0:
        errors = page.locator(
            ".errornote, .form-row.errors, tr.errors, .errorlist"
        ).all_inner_texts()
        raise AssertionError(f"the admin refused the form: {errors}")


def consumer_api(consumer) -> APIClient:
    """The consumer app's API client, signed in as `consumer`."""
    client = APIClient()
    client.force_authenticate(user=consumer.user)
    return client


def api_post(client, url: str, body: dict, **extra):
    """POST as the app does: JSON with a fresh Idempotency-Key."""
    key = f"staff-day-{next(_keys):06d}-{timezone.now().timestamp():.0f}"
    return client.post(url, body, format="json", HTTP_IDEMPOTENCY_KEY=key, **extra)


def audit_search(page, term: str) -> list[str]:
    """Search the audit trail's changelist for `term`; the rows' texts."""
    page.fill("#searchbar", term)
    page.press("#searchbar", "Enter")
    page.wait_for_load_state()
    return page.locator("#result_list tbody tr").all_inner_texts()
