"""Browser tests: Playwright driving Debian's Chromium against a live server of this project.

- Never a downloaded browser: Chromium is the Debian package at /usr/bin/chromium, and Chinese
  renders through the CJK font of `fonts-wqy-microhei`; `.ci/run` installs both.
- Without that browser (or without the playwright package) the tests are skipped and say why;
  in CI (LOTTERYINVOICE_REQUIRE_POSTGRES=1) they fail instead, so a missing install is seen.
- The live server is a thread of this process: tests need transactional database access
  (`pytest.mark.django_db(transaction=True)`), and `time_machine` moves its clock as well.
- Staff sign in through the real pages: password, then the current TOTP code.
- Screenshots are written to docs/screenshots/ under stable names (overwritten on each run).
"""

from __future__ import annotations

import importlib.util
import os
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connections
from django.urls import reverse

from tests.accounts.helpers import (
    ADMIN_INDEX,
    LOGIN_URL,
    MFA_URL,
    STRONG_PASSWORD,
    enable_totp,
    make_staff,
    totp_code,
)

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(settings.BASE_DIR) / "docs" / "screenshots"
VIEWPORT = {"width": 1280, "height": 900}
#: Milliseconds Playwright waits for a page or an element before the test fails.
TIMEOUT_MS = 15_000
TOTP_PERIOD = settings.MFA_TOTP_PERIOD


def _browser_missing() -> str | None:
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is missing (apt-get install chromium fonts-wqy-microhei)"
    if importlib.util.find_spec("playwright") is None:
        return "the playwright package is missing (pip install -r requirements-dev.txt)"
    return None


@pytest.fixture
def browser(monkeypatch):
    """Headless Debian Chromium, one per test.

    Per test, not per session: Playwright's synchronous API marks an asyncio loop as running in
    this thread while it is started, and Django then refuses ORM calls ("async context") and
    keeps the thread's database connections apart. The tests here call the ORM between browser
    steps (set-up, assertions), which is safe — the loop only waits for the browser — so the
    check is lifted for this test alone, and no other test of the worker runs beside it.
    """
    missing = _browser_missing()
    if missing:
        if os.environ.get("LOTTERYINVOICE_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"Browser tests must run in CI, but {missing}.")
        pytest.skip(f"browser tests need Debian's Chromium: {missing}")
    from playwright.sync_api import sync_playwright

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield chromium
        finally:
            chromium.close()
            # While the loop runs, Django keeps this thread's connections in a separate
            # (context-local) store: close them now, or they outlive the test database.
            connections.close_all()


@pytest.fixture
def new_context(browser):
    """`new_context()` → a fresh browser profile (own cookies), in Chinese, closed after."""
    contexts = []

    def make():
        context = browser.new_context(
            locale="zh-CN",
            timezone_id=settings.TIME_ZONE,
            viewport=VIEWPORT,
            accept_downloads=True,
        )
        context.set_default_timeout(TIMEOUT_MS)
        contexts.append(context)
        return context

    yield make
    for context in contexts:
        context.close()


@pytest.fixture
def fast_passwords(settings):
    """Cheap password hashing for the staff the test creates (and the live server checks)."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def staff_with_totp(username: str, *, groups=(), **fields):
    """A staff member with a password and an enrolled TOTP authenticator: (user, secret)."""
    user = make_staff(username, **fields)
    if groups:
        user.groups.add(*groups)
    return user, enable_totp(user)


def current_totp(secret: str, *, clock=None) -> str:
    """The code of the current period. The project accepts the current period only (and each
    code once), so when this one is about to end (a slow machine may take seconds to answer),
    move on to the next one first: by shifting `clock` (a time_machine traveller) if the
    test holds one, else by waiting."""
    left = TOTP_PERIOD - time.time() % TOTP_PERIOD
    if left < 10:
        if clock is not None:
            clock.shift(left + 1)
        else:
            time.sleep(left + 0.2)
    return totp_code(secret, period=TOTP_PERIOD)


def sign_in(page, base_url: str, user, secret: str, *, password=STRONG_PASSWORD, clock=None):
    """Sign `user` in through the real pages: the admin sends them to the sign-in page,
    then password, then the TOTP code; ends on the admin index. `clock`: see current_totp."""
    page.goto(base_url + ADMIN_INDEX)
    page.wait_for_url(f"**{LOGIN_URL}**")
    page.fill("#login-form input[name=login]", user.username)
    page.fill("#login-form input[name=password]", password)
    page.click("#login-form [type=submit]")
    page.wait_for_url(f"**{MFA_URL}**")
    page.fill("input[name=code]", current_totp(secret, clock=clock))
    page.press("input[name=code]", "Enter")
    page.wait_for_url(f"**{ADMIN_INDEX}")
    return page


def screenshot(page, name: str, *, full_page: bool = True) -> Path:
    """Save the page as docs/screenshots/<name>.png (a stable name, overwritten each run)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path


def admin_url(base_url: str, name: str, *args) -> str:
    return base_url + reverse(f"admin:{name}", args=args)


# --- Added for tests/e2e/test_payout_batch.py: the payment-gateway and identity sandboxes of
# the prize tests (on 127.0.0.1), with the settings pointing at them.
from tests.prizes.conftest import (  # noqa: E402, F401  (fixtures)
    identity_sandbox,
    payment_callbacks,
    payment_gateway_settings,
    payment_sandbox,
)
