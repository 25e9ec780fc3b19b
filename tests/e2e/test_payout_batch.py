"""Issue 7: a payout batch from preparation to payment, in a browser, under the four-eyes rule.

A campaign with a funded prize fund and a verified consumer who won a cash prize and claimed it
to a bank card in their own name (checked by the identity sandbox). A finance maker signs in
(password + TOTP), opens 付款批次 and prepares a batch for the campaign. The maker also holds the
checker role, so the approve action is offered — and the service refuses it: the maker of a
batch never approves it (the refusal is on screen and on record; the batch stays submitted). A
different finance checker, in a browser of their own, approves: the payout is sent to the
payment sandbox on 127.0.0.1, executed once and paid; the fund's page shows the paid amount. The
auditor finds both the refusal and the approval in the audit trail.
"""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group
from django.utils import translation

from apps.accounts.roles import ROLES_BY_CODE
from apps.audit.models import AuditEvent
from apps.prizes import services
from apps.prizes.choices import AwardStatus, BatchStatus, PayoutStatus
from apps.prizes.exceptions import PrizeError
from apps.prizes.ledger import fund_balances
from apps.prizes.models import Fund, Payout, PayoutBatch
from tests.e2e.conftest import admin_url, screenshot, sign_in, staff_with_totp
from tests.factories.core import CampaignFactory, funded_default_fund
from tests.prizes.helpers import payee, payout_account
from tests.prizes.test_api import win

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

PRIZE = Decimal("1000.00")
WIDE = {"width": 1680, "height": 900}


def refusal_message() -> str:
    with translation.override("zh-hans"):
        return str(PrizeError("batch.maker_is_checker").message)


def role(code: str) -> Group:
    return Group.objects.get(name=ROLES_BY_CODE[code].group_name)


def run_action(page, base, batch, action: str):
    page.goto(admin_url(base, "prizes_payoutbatch_changelist"))
    page.check(f"input[name=_selected_action][value='{batch.pk}']")
    page.select_option("select[name=action]", action)
    page.click("#changelist-form button[name=index]")
    page.wait_for_selector(".messagelist")


@pytest.fixture
def world(transactional_db, fast_passwords, payment_gateway_settings, identity_sandbox, settings):
    """The campaign, its funded fund, a claimed 1000.00 cash prize to a verified card; the
    maker (finance maker and checker roles), a second checker and the auditor."""
    # The live server answers in a thread of this (busy) process: give the gateway client time.
    settings.PAYMENT_GATEWAY_TIMEOUT = 5.0
    campaign = CampaignFactory(code="zz-e2e-pay", name="郑州市2026年有奖发票活动（付款）")
    funded_default_fund(campaign, Decimal("100000.00"))
    Fund.objects.filter(campaign=campaign).update(name="郑州市级有奖发票奖金")
    consumer = payee(identity_sandbox, real_name="张三")
    account = payout_account(identity_sandbox, consumer)  # the sandbox pays this card at once
    award = win(consumer, campaign, amount=PRIZE)
    payout = services.award_claim(consumer=consumer, award=award, account=account)
    return {
        "sandbox": payment_gateway_settings,
        "campaign": campaign,
        "payout": payout,
        "maker": staff_with_totp(
            "sun_maker", groups=[role("finance_maker"), role("finance_checker")]
        ),
        "checker": staff_with_totp("zhou_checker", groups=[role("finance_checker")]),
        "auditor": staff_with_totp("wu_auditor", groups=[role("auditor")]),
    }


def test_payout_batch_prepared_refused_to_its_maker_approved_and_paid(
    live_server, new_context, world
):
    base = live_server.url
    sandbox, campaign, payout = world["sandbox"], world["campaign"], world["payout"]

    # --- The maker prepares the batch.
    maker, maker_secret = world["maker"]
    page_m = sign_in(new_context().new_page(), base, maker, maker_secret)
    page_m.goto(admin_url(base, "prizes_payoutbatch_changelist"))
    page_m.click("#content-main .object-tools a[href$='/prepare/']")
    page_m.wait_for_url("**/prepare/")
    page_m.select_option("select[name=campaign]", str(campaign.pk))
    screenshot(page_m, "payout-batch-prepare")
    page_m.click("#content-main form input[type=submit].default")
    page_m.wait_for_selector(".messagelist .success")
    batch = PayoutBatch.objects.get()
    assert batch.reference in page_m.locator(".messagelist").inner_text()
    assert (batch.status, batch.created_by, batch.payout_count) == (
        BatchStatus.SUBMITTED,
        maker,
        1,
    )

    # --- The maker tries to approve their own batch: refused.
    page_m.set_viewport_size(WIDE)  # the changelists' columns, all in the screenshots
    run_action(page_m, base, batch, "approve_selected")
    assert refusal_message() in page_m.locator(".messagelist .error").inner_text()
    screenshot(page_m, "payout-batch-maker-refused")
    batch.refresh_from_db()
    assert batch.status == BatchStatus.SUBMITTED and batch.approved_by is None
    assert sandbox.executions == []

    # --- A different checker approves: the sandbox pays the payout once.
    checker, checker_secret = world["checker"]
    page_c = sign_in(new_context().new_page(), base, checker, checker_secret)
    run_action(page_c, base, batch, "approve_selected")
    assert page_c.locator(".messagelist .success").count() == 1
    batch.refresh_from_db()
    payout.refresh_from_db()
    assert (batch.status, batch.approved_by) == (BatchStatus.COMPLETED, checker)
    assert payout.status == PayoutStatus.PAID and payout.award.status == AwardStatus.PAID
    assert sandbox.executions == [payout.request_no]
    assert [t["request_no"] for t in sandbox.paid()] == [payout.request_no]

    page_c.goto(admin_url(base, "prizes_payoutbatch_change", batch.pk))
    inline = page_c.locator("#content-main").inner_text()
    assert payout.request_no in inline
    screenshot(page_c, "payout-batch-approved")

    # --- The fund's balances: paid and tax withheld as booked.
    fund = Fund.objects.get(campaign=campaign)
    balances = fund_balances(fund)
    assert balances["paid"] == payout.amount and balances["tax_withheld"] == payout.tax_withheld
    assert payout.amount + payout.tax_withheld == PRIZE
    page_c.set_viewport_size(WIDE)
    page_c.goto(admin_url(base, "prizes_fund_changelist"))
    row = page_c.locator("#result_list tbody tr", has_text=campaign.name)
    cells = [c.replace(",", "").strip() for c in row.locator("td").all_inner_texts()]
    numbers = [c for c in cells if re.fullmatch(r"\d+\.\d\d", c)]
    # budget, available, reserved, paid, tax withheld
    assert numbers == [
        "100000.00",
        str(100000 - PRIZE),
        "0.00",
        str(payout.amount),
        str(payout.tax_withheld),
    ], cells
    screenshot(page_c, "payout-fund-balances")

    # --- The auditor finds the refusal and the approval in the audit trail.
    auditor, auditor_secret = world["auditor"]
    page_a = sign_in(new_context().new_page(), base, auditor, auditor_secret)
    page_a.goto(admin_url(base, "audit_auditevent_changelist"))
    for action, actor in (
        ("payout_batch.approve_refused", maker),
        ("payout_batch.approved", checker),
    ):
        page_a.fill("#searchbar", action)
        page_a.press("#searchbar", "Enter")
        page_a.wait_for_load_state()
        rows = page_a.locator("#result_list tbody tr")
        assert rows.count() == 1, rows.all_inner_texts()
        text = rows.first.inner_text()
        assert action in text and actor.username in text
        assert AuditEvent.objects.get(action=action).target_id == str(batch.pk)
    assert Payout.objects.get().batch_id == batch.pk
