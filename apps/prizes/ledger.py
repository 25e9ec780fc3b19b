"""The prize-fund ledger: every movement of money between a fund's accounts.

Each movement is one `LedgerEntry` (from one account to another of the same fund) plus two
conditional balance updates in the same transaction. The CHECK constraint on balances turns any
overspend into an IntegrityError, which becomes `fund.insufficient`; the unique `key` makes
every movement happen at most once, however often a service is retried.
"""

from __future__ import annotations

from decimal import Decimal

from django.db import IntegrityError, connection, transaction
from django.db.models import Sum

from apps.common.models import ZERO
from apps.common.queries import insert_objects, pipelined

from .choices import AccountKind, EntryKind
from .exceptions import PrizeError
from .models import Fund, LedgerAccount, LedgerEntry

CENT = Decimal("0.01")


def fund_accounts_ensure(fund: Fund) -> dict[str, LedgerAccount]:
    """Create a fund's accounts if missing; return them by kind."""
    accounts = {a.kind: a for a in LedgerAccount.objects.filter(fund=fund)}
    for kind in AccountKind.values:
        if kind not in accounts:
            accounts[kind], _ = LedgerAccount.objects.get_or_create(fund=fund, kind=kind)
    return accounts


def _account(fund_id: int, kind: str) -> LedgerAccount:
    try:
        return LedgerAccount.objects.get(fund_id=fund_id, kind=kind)
    except LedgerAccount.DoesNotExist:
        fund_accounts_ensure(Fund.objects.get(pk=fund_id))
        return LedgerAccount.objects.get(fund_id=fund_id, kind=kind)


def _check_amount(amount: Decimal) -> Decimal:
    if (
        not isinstance(amount, Decimal)
        or not amount.is_finite()  # NaN / Infinity: refused, not an InvalidOperation crash
        or amount <= 0
        or amount != amount.quantize(CENT)
    ):
        raise PrizeError("ledger.invalid_amount", detail={"amount": str(amount)})
    return amount


def balance_moves(source_id: int, target_id: int, amount: Decimal) -> list[tuple[int, Decimal]]:
    """(account id, change of balance) of a movement of `amount` (checked:
    `ledger.invalid_amount` otherwise), in lock order: by id, which keeps two movements
    between the same accounts deadlock-free."""
    amount = _check_amount(amount)
    return sorted(((source_id, -amount), (target_id, amount)))


def balance_param(delta: Decimal):
    """A balance change as the database takes it (a parameter of a plain UPDATE)."""
    return LedgerAccount._meta.get_field("balance").get_db_prep_save(delta, connection)


def is_overdraft(exc: IntegrityError) -> bool:
    """The balance CHECK constraint refused a movement (PostgreSQL names it; SQLite says
    which kind of constraint failed)."""
    return "balance_not_negative" in str(exc) or "CHECK constraint failed" in str(exc)


def ledger_move(
    *,
    fund_id: int,
    kind: str,
    from_kind: str,
    to_kind: str,
    amount: Decimal,
    key: str,
    award=None,
    payout=None,
    memo: str = "",
    actor=None,
    new_key: bool = False,
    savepoint: bool = True,
    account_ids: dict[str, int] | None = None,
    balances_moved: bool = False,
) -> LedgerEntry | None:
    """Move `amount` between two accounts of a fund, once per `key`.

    Returns the new entry, or None when an entry with this key already exists (a retry).
    Raises `fund.insufficient` when the source account would go negative.

    For a caller on a hot path: `new_key` — the key cannot exist yet (it names a row inserted in
    this transaction), so it is not looked up first; `savepoint=False` — the caller's own
    savepoint undoes the movement on any error (a failure leaves the transaction to be rolled
    back, so a duplicate key is not told apart: it is raised); `account_ids` — the fund's
    {kind: account id} (`apps.prizes.caching`), instead of reading the two accounts. With
    `new_key` inside `apps.common.queries.batched_writes()`, the entry's INSERT goes with the
    batch and the returned entry has no id (the balance UPDATEs, which refuse an overdraft,
    run at once). `balances_moved`: the caller has made this movement's balance changes
    (`balance_moves`) in this transaction already (with `new_key`; the instant draw makes
    them with its stock UPDATE), so only the entry is written.
    """
    amount = _check_amount(amount)
    if not new_key and LedgerEntry.objects.filter(key=key).exists():
        return None
    if account_ids and from_kind in account_ids and to_kind in account_ids:
        source_id, target_id = account_ids[from_kind], account_ids[to_kind]
    else:
        source_id, target_id = _account(fund_id, from_kind).pk, _account(fund_id, to_kind).pk
    try:
        with transaction.atomic(savepoint=savepoint):
            entry = LedgerEntry(
                fund_id=fund_id,
                kind=kind,
                from_account_id=source_id,
                to_account_id=target_id,
                amount=amount,
                key=key,
                award=award,
                payout=payout,
                memo=memo[:300],
                actor=actor if getattr(actor, "is_authenticated", False) else None,
            )
            insert_objects([entry], later=new_key)
            if not balances_moved:
                # Plain statements, both in one round trip (an overdraft raises on the balance
                # CHECK when it comes back): this runs on every instant win.
                table = connection.ops.quote_name(LedgerAccount._meta.db_table)
                sql = f"UPDATE {table} SET balance = balance + %s WHERE id = %s"  # noqa: S608 - names only
                with pipelined(), connection.cursor() as cursor:
                    for account_id, delta in balance_moves(source_id, target_id, amount):
                        cursor.execute(sql, [balance_param(delta), account_id])
    except IntegrityError as exc:
        if savepoint and LedgerEntry.objects.filter(key=key).exists():
            return None
        if is_overdraft(exc):
            raise PrizeError(
                "fund.insufficient",
                detail={"fund": fund_id, "account": from_kind, "amount": str(amount)},
                status_code=409,
            ) from exc
        raise
    return entry


def fund_balances(fund: Fund) -> dict[str, Decimal]:
    """The fund's report line: budget received, available, reserved, paid, tax withheld."""
    balances = {a.kind: a.balance for a in LedgerAccount.objects.filter(fund=fund)}
    return {
        "budget": -balances.get(AccountKind.FUNDING, ZERO),
        "available": balances.get(AccountKind.AVAILABLE, ZERO),
        "reserved": balances.get(AccountKind.RESERVED, ZERO),
        "paid": balances.get(AccountKind.DISBURSED, ZERO),
        "tax_withheld": balances.get(AccountKind.TAX_WITHHELD, ZERO),
    }


def ledger_verify(fund: Fund | None = None) -> list[str]:
    """Recompute every balance from the entries; return the discrepancies (empty: all good).

    Checks that each account's stored balance equals inflows minus outflows, that each fund's
    balances sum to zero, and that no account but FUNDING is negative.
    """
    problems: list[str] = []
    accounts = LedgerAccount.objects.all()
    entries = LedgerEntry.objects.all()
    if fund is not None:
        accounts, entries = accounts.filter(fund=fund), entries.filter(fund=fund)
    inflow = dict(entries.values_list("to_account").annotate(s=Sum("amount")))
    outflow = dict(entries.values_list("from_account").annotate(s=Sum("amount")))
    totals: dict[int, Decimal] = {}
    for account in accounts:
        expected = inflow.get(account.pk, ZERO) - outflow.get(account.pk, ZERO)
        if expected != account.balance:
            problems.append(f"account {account.pk} balance {account.balance} != entries {expected}")
        if account.kind != AccountKind.FUNDING and account.balance < 0:
            problems.append(f"account {account.pk} is negative: {account.balance}")
        totals[account.fund_id] = totals.get(account.fund_id, ZERO) + account.balance
    for fund_id, total in totals.items():
        if total != 0:
            problems.append(f"fund {fund_id} does not balance: {total}")
    return problems


def fund_deposit(*, fund: Fund, amount: Decimal, key: str, memo: str, actor) -> LedgerEntry | None:
    """Record money received into a fund (funding → available), once per `key`."""
    from apps.audit.services import audit_record

    with transaction.atomic():
        fund_accounts_ensure(fund)
        entry = ledger_move(
            fund_id=fund.pk,
            kind=EntryKind.DEPOSIT,
            from_kind=AccountKind.FUNDING,
            to_kind=AccountKind.AVAILABLE,
            amount=amount,
            key=key,
            memo=memo,
            actor=actor,
        )
        if entry is not None:
            audit_record(
                action="fund.deposit",
                target=fund,
                actor=actor,
                reason=memo,
                after={"amount": str(amount), "key": key},
            )
    return entry


def fund_correct(
    *, fund: Fund, from_kind: str, to_kind: str, amount: Decimal, reason: str, key: str, actor
) -> LedgerEntry | None:
    """A compensating entry decided by finance (never an edit of an earlier one)."""
    from apps.audit.services import audit_record

    if not reason.strip():
        raise PrizeError("ledger.reason_required", _reason_message())
    with transaction.atomic():
        entry = ledger_move(
            fund_id=fund.pk,
            kind=EntryKind.CORRECTION,
            from_kind=from_kind,
            to_kind=to_kind,
            amount=amount,
            key=key,
            memo=reason,
            actor=actor,
        )
        if entry is not None:
            audit_record(
                action="fund.correction",
                target=fund,
                actor=actor,
                reason=reason,
                after={"from": from_kind, "to": to_kind, "amount": str(amount)},
            )
    return entry


def _reason_message():
    from django.utils.translation import gettext_lazy as _

    return _("A correction needs a reason.")
