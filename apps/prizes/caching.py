"""The prize configuration an instant win reads, cached: the campaign's prize policy, the fund
a prize is paid from, and the ids of that fund's ledger accounts.

Same rules as the submission path's campaign cache (`apps.invoices.caching`): one generation
stamp for all of it, replaced on every `post_save` / `post_delete` of `PrizePolicy`, `Fund`
and `LedgerAccount` (now and again after the commit), so a value read before a change is never
served after it. Writers that bypass the signals (a queryset `update()`) call
`prize_config_cache_clear()`.

Only configuration is cached, never money: balances are changed by conditional UPDATEs in
`apps.prizes.ledger`, and a ledger account id cannot go stale unnoticed (accounts are never
re-created under another id while entries point at them; a wrong id would fail its foreign key).
"""

from __future__ import annotations

from apps.invoices.caching import PREFIX, generation_bump, read_through

PRIZE_GEN = f"{PREFIX}:gen:prizes"


def _policy_key(campaign_id: int) -> str:
    return f"{PREFIX}:prizes:policy:{campaign_id}"


def _fund_key(campaign_id: int, sponsor_id: int | None) -> str:
    return f"{PREFIX}:prizes:fund:{campaign_id}:{sponsor_id or 'default'}"


def _accounts_key(fund_id: int) -> str:
    return f"{PREFIX}:prizes:accounts:{fund_id}"


def cached_policy(campaign_id: int):
    """The campaign's `PrizePolicy` (`services.policy_for`: created with the defaults on first
    use), from the cache."""
    from .services import policy_for

    return read_through(PRIZE_GEN, _policy_key(campaign_id), lambda: policy_for(campaign_id))


def cached_fund(*, campaign_id: int, sponsor_id: int | None = None):
    """`services.fund_for` from the cache (None cached too: `fund_for` raises for it)."""
    from .models import Fund

    def load():
        funds = Fund.objects.filter(campaign_id=campaign_id)
        if sponsor_id is not None:
            return funds.filter(sponsor_id=sponsor_id).first()
        return funds.filter(is_default=True).first()

    return read_through(PRIZE_GEN, _fund_key(campaign_id, sponsor_id), load)


def cached_account_ids(fund_id: int) -> dict[str, int]:
    """{account kind: ledger account id} of a fund ({} while it has none)."""
    from .models import LedgerAccount

    def load():
        return dict(LedgerAccount.objects.filter(fund_id=fund_id).values_list("kind", "pk"))

    return read_through(PRIZE_GEN, _accounts_key(fund_id), load) or {}


def prize_config_cache_clear() -> None:
    """Forget every cached policy, fund and account id (a new generation)."""
    generation_bump(PRIZE_GEN)


def _on_change(sender, instance, **kwargs) -> None:
    prize_config_cache_clear()


def connect_signals() -> None:
    from django.db.models.signals import post_delete, post_save

    from .models import Fund, LedgerAccount, PrizePolicy

    for model in (PrizePolicy, Fund, LedgerAccount):
        name = model.__name__
        post_save.connect(_on_change, sender=model, dispatch_uid=f"prize-cfg-{name}")
        post_delete.connect(_on_change, sender=model, dispatch_uid=f"prize-cfg-del-{name}")
