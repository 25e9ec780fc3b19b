"""The prizes back office, clicked through by staff in the real roles (apps/accounts/roles.py)
signed in with their second factor: fund balances and deposits, payout batches prepared by a
finance maker and approved by a different finance checker (then paid by the sandbox gateway),
rejections, statement reconciliation, award cancellation — and the auditor sees every page,
read-only.
"""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from django.contrib import admin
from django.contrib.auth.models import Group
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from django.utils import timezone, translation

from apps.accounts.roles import ROLES_BY_CODE
from apps.audit.models import AuditEvent
from apps.prizes import services
from apps.prizes.choices import (
    AwardStatus,
    BatchStatus,
    EntryKind,
    MismatchKind,
    PayoutStatus,
)
from apps.prizes.exceptions import PrizeError
from apps.prizes.gateway import get_payment_gateway
from apps.prizes.ledger import fund_balances, ledger_verify
from apps.prizes.models import (
    Award,
    Fund,
    LedgerAccount,
    LedgerEntry,
    Payout,
    PayoutBatch,
    ProviderStatement,
    ReconciliationIssue,
)
from tests.accounts.helpers import make_staff, sign_in_staff
from tests.factories.core import ConsumerFactory, MerchantFactory, make_resident_id
from tests.prizes.test_api import campaign_with_fund, verified_account, win

pytestmark = pytest.mark.django_db

PRIZE_MODELS = [model for model in admin.site._registry if model._meta.app_label == "prizes"]


def staff_in(*roles: str, username: str):
    user = make_staff(username)
    for role in roles:
        user.groups.add(Group.objects.get(name=ROLES_BY_CODE[role].group_name))
    return type(user).objects.get(pk=user.pk)


def signed_in(user) -> Client:
    return sign_in_staff(Client(), user)


def url(model, view: str, *args) -> str:
    return reverse(f"admin:prizes_{model._meta.model_name}_{view}", args=args)


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]] if response.context else []


def message(code: str) -> str:
    """The service's message for `code` as the back office shows it (Chinese by default)."""
    with translation.override("zh-hans"):
        return str(PrizeError(code).message)


def action(client, model, name: str, objects, **extra):
    data = {"action": name, "_selected_action": [str(o.pk) for o in objects], **extra}
    return client.post(url(model, "changelist"), data, follow=True)


def claimed(campaign, n: int, *, amount=Decimal("100.00")) -> list[Payout]:
    """`n` consumers each won and claimed a cash prize to their own (verified) card."""
    payouts = []
    for i in range(n):
        consumer = ConsumerFactory(real_name="王五", id_number=make_resident_id(7_000 + i))
        award = win(consumer, campaign, amount=amount)
        account = verified_account(consumer, f"62220200000001{i:05d}")
        payouts.append(services.award_claim(consumer=consumer, award=award, account=account))
    return payouts


@pytest.fixture
def campaign(db):
    return campaign_with_fund(Decimal("100000.00"))


@pytest.fixture
def maker(db):
    return staff_in("finance_maker", username="maker")


@pytest.fixture
def checker(db):
    return staff_in("finance_checker", username="checker")


@pytest.fixture
def auditor(db):
    return staff_in("auditor", username="auditor")


# --- Funds ------------------------------------------------------------------------------------


def test_fund_changelist_shows_balances(maker, campaign):
    win(ConsumerFactory(), campaign, amount=Decimal("1000.00"))
    response = signed_in(maker).get(url(Fund, "changelist"))
    assert response.status_code == 200
    html = response.content.decode()
    row = re.search(r"<tr[^>]*>.*?test fund.*?</tr>", html, re.S).group(0)
    cells = re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
    numbers = [c.replace(",", "") for c in cells if re.fullmatch(r"[\d,]+\.\d\d", c.strip())]
    # budget, available, reserved, paid, tax withheld
    assert numbers == ["100000.00", "99000.00", "1000.00", "0.00", "0.00"], cells


def test_finance_maker_books_a_deposit_once_per_reference(maker, campaign):
    fund = Fund.objects.get(campaign=campaign)
    client = signed_in(maker)
    page = client.get(url(Fund, "deposit", fund.pk))
    assert page.status_code == 200 and b'name="reference"' in page.content
    form = {"amount": "5000.00", "reference": "YS-2026-0042", "memo": "市财政第二批"}
    booked = client.post(url(Fund, "deposit", fund.pk), form, follow=True)
    assert booked.redirect_chain[-1][0] == url(Fund, "changelist")
    assert fund_balances(fund)["available"] == Decimal("105000.00")
    entry = LedgerEntry.objects.get(key=f"deposit:{fund.pk}:YS-2026-0042")
    assert (entry.kind, entry.amount, entry.actor) == (EntryKind.DEPOSIT, Decimal("5000.00"), maker)
    assert AuditEvent.objects.filter(action="fund.deposit", actor_id=maker.pk).count() == 1
    again = client.post(url(Fund, "deposit", fund.pk), form, follow=True)
    assert len(messages_of(again)) == 1
    assert fund_balances(fund)["available"] == Decimal("105000.00")
    # Bad input is shown on the form; nothing is booked.
    bad = client.post(url(Fund, "deposit", fund.pk), {**form, "amount": "-5", "reference": "X2"})
    assert bad.status_code == 200 and bad.context["form"].errors.get("amount")
    assert LedgerEntry.objects.filter(kind=EntryKind.DEPOSIT).count() == 2  # initial + this one
    assert ledger_verify() == []


def test_deposit_page_is_403_for_the_auditor_and_campaign_admin(auditor, campaign):
    fund = Fund.objects.get(campaign=campaign)
    before = fund_balances(fund)
    for user in (auditor, staff_in("campaign_admin", username="campaign_admin")):
        client = signed_in(user)
        assert client.get(url(Fund, "deposit", fund.pk)).status_code == 403
        form = {"amount": "5000.00", "reference": "YS-1", "memo": "x"}
        assert client.post(url(Fund, "deposit", fund.pk), form).status_code == 403
        assert b"/deposit/" not in client.get(url(Fund, "change", fund.pk)).content
    assert fund_balances(fund) == before


def test_campaign_admin_adds_a_fund_with_its_ledger_accounts(campaign):
    sponsor = MerchantFactory()
    client = signed_in(staff_in("campaign_admin", username="campaign_admin"))
    response = client.post(
        url(Fund, "add"),
        {
            "campaign": campaign.pk,
            "name": "联动商家基金",
            "source": "merchant",
            "sponsor": sponsor.pk,
        },
        follow=True,
    )
    assert response.status_code == 200
    fund = Fund.objects.get(sponsor=sponsor)
    assert LedgerAccount.objects.filter(fund=fund).count() == 5
    assert AuditEvent.objects.filter(action="fund.saved").exists()


# --- Payout batches: maker prepares, a different checker approves -------------------------------


def test_maker_prepares_a_batch(maker, campaign):
    payouts = claimed(campaign, 2, amount=Decimal("1000.00"))
    client = signed_in(maker)
    listing = client.get(url(PayoutBatch, "changelist"))
    assert url(PayoutBatch, "prepare").encode() in listing.content
    assert client.get(url(PayoutBatch, "prepare")).status_code == 200
    response = client.post(url(PayoutBatch, "prepare"), {"campaign": campaign.pk}, follow=True)
    batch = PayoutBatch.objects.get()
    assert response.redirect_chain[-1][0] == url(PayoutBatch, "changelist")
    assert any(batch.reference in m for m in messages_of(response))
    assert (batch.status, batch.created_by, batch.payout_count) == (BatchStatus.SUBMITTED, maker, 2)
    assert (batch.total_amount, batch.total_tax) == (Decimal("1600.00"), Decimal("400.00"))
    assert {p.pk for p in batch.payouts.all()} == {p.pk for p in payouts}
    # Nothing left to gather: the form says so.
    empty = client.post(url(PayoutBatch, "prepare"), {"campaign": campaign.pk})
    assert empty.status_code == 200 and message("batch.empty") in empty.content.decode()
    assert PayoutBatch.objects.count() == 1


def test_the_maker_cannot_approve_their_own_batch(campaign):
    both = staff_in("finance_maker", "finance_checker", username="maker_and_checker")
    claimed(campaign, 1)
    batch = services.payout_batch_prepare(campaign=campaign, actor=both)
    response = action(signed_in(both), PayoutBatch, "approve_selected", [batch])
    assert response.status_code == 200
    shown = messages_of(response)
    assert any(message("batch.maker_is_checker") in m for m in shown), shown
    batch.refresh_from_db()
    assert batch.status == BatchStatus.SUBMITTED and batch.approved_by is None
    assert set(batch.payouts.values_list("status", flat=True)) == {PayoutStatus.PENDING}
    refused = AuditEvent.objects.get(action="payout_batch.approve_refused")
    assert refused.actor_id == both.pk


def test_a_different_checker_approves_and_the_sandbox_pays(
    maker, checker, campaign, payment_gateway_settings, django_capture_on_commit_callbacks
):
    sandbox = payment_gateway_settings
    payouts = claimed(campaign, 2, amount=Decimal("1000.00"))
    batch = services.payout_batch_prepare(campaign=campaign, actor=maker)
    # The maker's approve action is not even offered.
    assert b"approve_selected" not in signed_in(maker).get(url(PayoutBatch, "changelist")).content
    client = signed_in(checker)
    with django_capture_on_commit_callbacks(execute=True):
        response = action(client, PayoutBatch, "approve_selected", [batch])
    assert response.status_code == 200, messages_of(response)
    batch.refresh_from_db()
    assert (batch.approved_by, batch.status) == (checker, BatchStatus.COMPLETED)
    paid = sandbox.paid()
    assert sorted(t["request_no"] for t in paid) == sorted(p.request_no for p in payouts)
    assert {t["amount"] for t in paid} == {"800.00"}
    for payout in payouts:
        payout.refresh_from_db()
        assert payout.status == PayoutStatus.PAID
        assert payout.award.status == AwardStatus.PAID
    assert fund_balances(Fund.objects.get(campaign=campaign))["tax_withheld"] == Decimal("400.00")
    assert ledger_verify() == []
    # The batch's page shows its payouts.
    page = client.get(url(PayoutBatch, "change", batch.pk))
    assert page.status_code == 200 and payouts[0].request_no.encode() in page.content
    # Approving again changes nothing and pays nobody twice.
    action(client, PayoutBatch, "approve_selected", [batch])
    assert len(sandbox.paid()) == 2


def test_checker_rejects_with_a_reason(maker, checker, campaign):
    payouts = claimed(campaign, 1)
    batch = services.payout_batch_prepare(campaign=campaign, actor=maker)
    client = signed_in(checker)
    form = action(client, PayoutBatch, "reject_selected", [batch])
    assert form.status_code == 200 and b'name="reason"' in form.content
    no_reason = action(client, PayoutBatch, "reject_selected", [batch], apply="1", reason="")
    assert no_reason.context["form"].errors
    batch.refresh_from_db()
    assert batch.status == BatchStatus.SUBMITTED
    done = action(
        client, PayoutBatch, "reject_selected", [batch], apply="1", reason="金额与预算不符"
    )
    assert done.redirect_chain, done.content[:300]
    batch.refresh_from_db()
    assert (batch.status, batch.rejected_reason) == (BatchStatus.REJECTED, "金额与预算不符")
    payouts[0].refresh_from_db()
    assert payouts[0].batch is None and payouts[0].status == PayoutStatus.PENDING
    assert AuditEvent.objects.filter(action="payout_batch.rejected", actor_id=checker.pk).exists()
    # The payout can go into a new batch.
    assert services.payout_batch_prepare(campaign=campaign, actor=maker).payout_count == 1


# --- Reconciliation ---------------------------------------------------------------------------


def test_statement_import_reconciles_and_lists_mismatches(
    maker, checker, campaign, payment_gateway_settings, django_capture_on_commit_callbacks
):
    sandbox = payment_gateway_settings
    payouts = claimed(campaign, 3)
    batch = services.payout_batch_prepare(campaign=campaign, actor=maker)
    with django_capture_on_commit_callbacks(execute=True):
        services.payout_batch_approve(batch=batch, actor=checker)
    assert set(Payout.objects.values_list("status", flat=True)) == {PayoutStatus.PAID}
    matched, wrong, missing = (p.request_no for p in payouts)
    sandbox.control(
        "statement_mismatch", wrong_amount=[wrong], missing=[missing], extra=1, bad_lines=1
    )
    day = timezone.localdate()
    csv = get_payment_gateway().fetch_statement(day)

    client = signed_in(maker)
    assert (
        url(ProviderStatement, "import").encode()
        in client.get(url(ProviderStatement, "changelist")).content
    )
    upload = SimpleUploadedFile("statement.csv", csv, content_type="text/csv")
    response = client.post(
        url(ProviderStatement, "import"), {"day": day.isoformat(), "file": upload}, follow=True
    )
    statement = ProviderStatement.objects.get()
    assert response.redirect_chain[-1][0] == url(ProviderStatement, "change", statement.pk)
    assert (statement.matched_count, statement.mismatch_count) == (1, 4)
    kinds = dict(ReconciliationIssue.objects.values_list("kind", "request_no"))
    assert kinds[MismatchKind.AMOUNT] == wrong
    assert kinds[MismatchKind.MISSING_AT_PROVIDER] == missing
    assert MismatchKind.EXTRA_AT_PROVIDER in kinds and MismatchKind.BAD_LINE in kinds
    page = response.content.decode()
    for request_no in (wrong, missing):
        assert request_no in page
    assert matched not in page
    # Listed for finance, none fixed: our payouts are untouched.
    assert set(Payout.objects.values_list("status", flat=True)) == {PayoutStatus.PAID}
    assert AuditEvent.objects.filter(action="statement.reconciled", actor_id=maker.pk).exists()
    # Finance records how one was settled.
    issue = ReconciliationIssue.objects.get(kind=MismatchKind.AMOUNT)
    settled = action(
        client, ReconciliationIssue, "resolve_selected", [issue], apply="1", reason="银行已退回差额"
    )
    assert settled.status_code == 200
    issue.refresh_from_db()
    assert issue.resolved and issue.resolved_by == maker
    # The checker (no reconcile permission) cannot import.
    assert signed_in(checker).get(url(ProviderStatement, "import")).status_code == 403


# --- Awards -----------------------------------------------------------------------------------


def test_cancel_awards_with_a_reason(checker, maker, campaign):
    award = win(ConsumerFactory(), campaign, amount=Decimal("300.00"))
    fund = award.fund
    before = fund_balances(fund)
    assert b"cancel_selected" not in signed_in(maker).get(url(Award, "changelist")).content
    client = signed_in(checker)
    form = action(client, Award, "cancel_selected", [award])
    assert form.status_code == 200 and b'name="reason"' in form.content
    done = action(client, Award, "cancel_selected", [award], apply="1", reason="发票已红冲")
    assert done.status_code == 200 and done.redirect_chain
    award.refresh_from_db()
    assert (award.status, award.status_reason) == (AwardStatus.CANCELLED, "发票已红冲")
    assert award.history.last().actor == checker
    after = fund_balances(fund)
    assert after["reserved"] == before["reserved"] - Decimal("300.00")
    assert after["available"] == before["available"] + Decimal("300.00")
    assert AuditEvent.objects.filter(action="award.cancelled", actor_id=checker.pk).exists()
    assert ledger_verify() == []


def test_a_paid_prize_is_not_reported_cancelled(checker, maker, campaign):
    (payout,) = claimed(campaign, 1)
    Payout.objects.filter(pk=payout.pk).update(status=PayoutStatus.SENDING)  # on its way
    award = payout.award
    client = signed_in(checker)
    done = action(client, Award, "cancel_selected", [award], apply="1", reason="发票已红冲")
    shown = messages_of(done)
    assert len(shown) == 1 and str(award) in shown[0], shown
    award.refresh_from_db()
    assert award.status == AwardStatus.CLAIMED
    assert not AuditEvent.objects.filter(action="award.cancelled").exists()


# --- The auditor reads everything and changes nothing --------------------------------------------


@pytest.fixture
def every_kind_of_record(
    maker, checker, campaign, payment_gateway_settings, django_capture_on_commit_callbacks
):
    services.policy_for(campaign.pk)
    win(ConsumerFactory(), campaign, kind="coupon", amount=Decimal("20.00"))
    claimed(campaign, 1)
    batch = services.payout_batch_prepare(campaign=campaign, actor=maker)
    with django_capture_on_commit_callbacks(execute=True):
        services.payout_batch_approve(batch=batch, actor=checker)
    services.statement_reconcile(
        day=timezone.localdate(), data=b"request_no,provider_ref,amount,status,finished_at\nbad\n"
    )
    return campaign


def test_every_prizes_page_renders_read_only_for_the_auditor(auditor, every_kind_of_record):
    assert {m._meta.model_name for m in PRIZE_MODELS} >= {
        "prizepolicy",
        "fund",
        "ledgerentry",
        "award",
        "coupon",
        "payoutaccount",
        "payoutbatch",
        "payout",
        "providerstatement",
        "reconciliationissue",
    }
    client = signed_in(auditor)
    index = client.get(reverse("admin:app_list", args=["prizes"]))
    assert index.status_code == 200
    for model in PRIZE_MODELS:
        listing = client.get(url(model, "changelist"))
        assert listing.status_code == 200, model
        html = listing.content.decode()
        assert 'class="addlink"' not in html, model
        # No action but the (absent) delete is offered to a read-only role.
        assert "selected" not in "".join(re.findall(r'<option value="(\w+)"', html)), model
        obj = model._default_manager.order_by("pk").first()
        assert obj is not None, f"no {model._meta.model_name} to look at"
        detail = client.get(url(model, "change", obj.pk))
        assert detail.status_code == 200, model
        page = detail.content.decode()
        assert 'name="_save"' not in page and "deletelink" not in page, model
        assert client.post(url(model, "change", obj.pk), {}).status_code == 403, model
        assert client.get(url(model, "delete", obj.pk)).status_code == 403, model
        assert client.get(url(model, "add")).status_code == 403, model
    for page in (
        url(Fund, "deposit", Fund.objects.first().pk),
        url(PayoutBatch, "prepare"),
        url(ProviderStatement, "import"),
    ):
        assert client.get(page).status_code == 403, page
    # Nothing on screen gives away an account number or a coupon code.
    from apps.prizes.models import Coupon, PayoutAccount

    payout_page = client.get(url(PayoutAccount, "change", PayoutAccount.objects.first().pk))
    assert str(PayoutAccount.objects.first().account_no).encode() not in payout_page.content
    coupon = Coupon.objects.first()
    assert str(coupon.code).encode() not in client.get(url(Coupon, "change", coupon.pk)).content
    assert str(coupon.code).encode() not in client.get(url(Coupon, "changelist")).content


@pytest.mark.django_db
def test_payout_export_is_masked_for_the_auditor_and_audited(auditor, campaign):
    from apps.prizes.resources import PayoutResource
    from tests.invoices.test_exports import export, last_export, read_export

    (payout,) = claimed(campaign, 1)
    client = signed_in(auditor)
    response = export(client, url(Payout, "export"), "csv")
    rows = read_export(response, "csv", PayoutResource())
    assert [r["request_no"] for r in rows] == [payout.request_no]
    real_name = str(payout.account.consumer.real_name)
    assert rows[0]["payee_name"] != real_name and "*" in rows[0]["payee_name"]
    assert str(payout.account.account_no) not in rows[0]["account_no"]
    event = last_export()
    assert event.actor_username == auditor.username
