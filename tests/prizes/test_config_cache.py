"""Issue 11: an instant win reads its prize policy, its fund and the fund's ledger accounts from
the prize configuration cache (apps.prizes.caching); every change staff make is seen by the very
next win, and the reservation is still all-or-nothing without its own look-ups and savepoint."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.prizes import caching
from apps.prizes.choices import AccountKind, EntryKind
from apps.prizes.ledger import fund_balances, ledger_move, ledger_verify
from apps.prizes.models import Award, Fund, LedgerAccount, LedgerEntry, PrizePolicy
from tests.factories.core import ConsumerFactory, MerchantFactory
from tests.prizes.helpers import (
    default_fund,
    instant_win,
    prize_campaign,
    sponsor_fund,
)

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]

D = Decimal


@pytest.fixture
def campaign():
    campaign = prize_campaign()
    PrizePolicy.objects.get_or_create(campaign=campaign)
    return campaign


@pytest.fixture
def winner():
    return ConsumerFactory(real_name="张三")


def _prize_reads(ctx) -> list[str]:
    tables = ('"prizes_fund"', '"prizes_prizepolicy"', '"prizes_ledgeraccount"')
    return [
        q["sql"]
        for q in ctx.captured_queries
        if q["sql"].startswith("SELECT") and any(t in q["sql"] for t in tables)
    ]


def test_a_warm_win_reads_no_prize_configuration(campaign, winner):
    instant_win(campaign, winner, D("50.00"))  # warms the cache
    with CaptureQueriesContext(connection) as ctx:
        award = instant_win(campaign, winner, D("50.00"))
    assert award is not None and award.fund == default_fund(campaign)
    assert _prize_reads(ctx) == []
    assert not any('"prizes_ledgerentry"' in q["sql"] and "SELECT" in q["sql"][:8] for q in ctx)
    assert fund_balances(award.fund)["reserved"] == D("100.00")
    assert ledger_verify() == []


def test_a_policy_saved_by_staff_is_seen_by_the_next_win(campaign, winner):
    assert instant_win(campaign, winner, D("1000.00")).tax_withheld == D("200.00")
    policy = PrizePolicy.objects.get(campaign=campaign)
    policy.tax_exempt_limit, policy.tax_rate = D("2000.00"), D("0.1000")
    policy.save()  # the admin's save
    assert instant_win(campaign, winner, D("1000.00")).tax_withheld == D("0.00")
    # A write that bypasses the signals must say so.
    PrizePolicy.objects.filter(pk=policy.pk).update(tax_exempt_limit=D("500.00"))
    caching.prize_config_cache_clear()
    assert instant_win(campaign, winner, D("1000.00")).tax_withheld == D("100.00")


def test_a_deleted_policy_is_made_again_with_the_defaults(campaign, winner):
    policy = PrizePolicy.objects.get(campaign=campaign)
    policy.tax_exempt_limit = D("5000.00")
    policy.save()
    assert instant_win(campaign, winner, D("1000.00")).tax_withheld == D("0.00")
    policy.delete()
    assert instant_win(campaign, winner, D("1000.00")).tax_withheld == D("200.00")


def test_a_new_default_fund_is_seen_by_the_next_win(campaign, winner):
    old = default_fund(campaign)
    assert instant_win(campaign, winner, D("50.00")).fund == old
    old.is_default = False
    old.save()
    new = Fund.objects.create(
        campaign=campaign, name="追加奖金", source=old.source, is_default=True
    )
    from apps.prizes.ledger import fund_accounts_ensure, fund_deposit

    fund_accounts_ensure(new)
    fund_deposit(fund=new, amount=D("500.00"), key="deposit:new", memo="", actor=None)
    award = instant_win(campaign, winner, D("50.00"))
    assert award.fund == new
    assert fund_balances(new)["reserved"] == D("50.00")
    assert fund_balances(old)["reserved"] == D("50.00")
    assert ledger_verify() == []


def test_a_sponsor_fund_created_after_a_miss_is_seen(campaign, winner):
    merchant = MerchantFactory()
    # No sponsor fund yet: no prize (fund.not_configured), and "no such fund" is cached ...
    assert instant_win(campaign, winner, D("50.00"), sponsor=merchant) is None
    assert caching.cached_fund(campaign_id=campaign.pk, sponsor_id=merchant.pk) is None
    # ... until the fund is created.
    fund = sponsor_fund(campaign, merchant)
    award = instant_win(campaign, winner, D("50.00"), sponsor=merchant)
    assert award.fund == fund and fund_balances(fund)["reserved"] == D("50.00")


def test_an_empty_fund_still_awards_nothing_and_writes_nothing(winner):
    campaign = prize_campaign(budget=D("30.00"))
    instant_win(campaign, winner, D("20.00"))  # warm: fund, policy and accounts cached
    awards, entries = Award.objects.count(), LedgerEntry.objects.count()
    assert instant_win(campaign, winner, D("20.00")) is None  # only 10.00 left
    assert (Award.objects.count(), LedgerEntry.objects.count()) == (awards, entries)
    assert fund_balances(default_fund(campaign))["available"] == D("10.00")
    assert ledger_verify() == []


def test_account_ids_come_from_the_cache_and_follow_new_accounts(campaign):
    fund = default_fund(campaign)
    ids = caching.cached_account_ids(fund.pk)
    assert ids == dict(LedgerAccount.objects.filter(fund=fund).values_list("kind", "pk"))
    other = Fund.objects.create(campaign=campaign, name="新基金", source=fund.source)
    assert caching.cached_account_ids(other.pk) == {}
    from apps.prizes.ledger import fund_accounts_ensure

    fund_accounts_ensure(other)  # creating accounts is a change: the next read sees them
    assert set(caching.cached_account_ids(other.pk)) == set(AccountKind.values)


def test_the_fast_reservation_still_refuses_an_overspend(campaign):
    fund = default_fund(campaign)
    available = fund_balances(fund)["available"]
    ids = caching.cached_account_ids(fund.pk)
    from apps.prizes.exceptions import PrizeError

    with pytest.raises(PrizeError) as exc, connection.cursor():
        from django.db import transaction

        with transaction.atomic():
            ledger_move(
                fund_id=fund.pk,
                kind=EntryKind.RESERVE,
                from_kind=AccountKind.AVAILABLE,
                to_kind=AccountKind.RESERVED,
                amount=available + D("0.01"),
                key="reserve:test:over",
                new_key=True,
                savepoint=False,
                account_ids=ids,
            )
    assert exc.value.code == "fund.insufficient"
    assert not LedgerEntry.objects.filter(key="reserve:test:over").exists()
    assert fund_balances(fund)["available"] == available
    assert ledger_verify() == []
