"""Every write of the prizes app: awards, coupons, payout accounts, claims, payout batches,
payouts and reconciliation.

Invariants kept here (and backed by the database):
- an award's gross amount is reserved in its fund from creation until it is paid, redeemed,
  expired or cancelled, and released exactly once otherwise (ledger keys);
- an award is paid at most once: one live payout per award (partial unique index), one request
  number per payout, reused on every retry and never for anything else;
- a payout whose outcome is unknown is settled only by the provider's answer (status query,
  callback or statement) — never by sending a new payment;
- the finance checker who approves a batch is never the maker who prepared it.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from django.db import IntegrityError, transaction
from django.db.models import Count, Q, Sum
from django.utils import timezone

from apps.audit.models import AuditCategory
from apps.audit.services import audit_record
from apps.common.models import ZERO
from apps.common.queries import insert_objects
from apps.common.states import check_transition
from apps.invoices.choices import InvoiceStatus
from apps.reporting.rollups import award_changed

from . import gateway as gw
from .caching import cached_account_ids, cached_fund, cached_policy
from .choices import (
    AWARD_RESERVED_STATUSES,
    AWARD_TRANSITIONS,
    BATCH_TRANSITIONS,
    PAYOUT_IN_FLIGHT,
    PAYOUT_TRANSITIONS,
    AccountKind,
    AwardKind,
    AwardSource,
    AwardStatus,
    BatchStatus,
    CouponStatus,
    EntryKind,
    MismatchKind,
    PayoutAccountKind,
    PayoutAccountStatus,
    PayoutStatus,
)
from .exceptions import PrizeError
from .ledger import balance_moves, ledger_move
from .models import (
    Award,
    AwardStatusChange,
    Coupon,
    Fund,
    Payout,
    PayoutAccount,
    PayoutBatch,
    PayoutStatusChange,
    PrizePolicy,
    ProviderStatement,
    ReconciliationIssue,
)

logger = logging.getLogger(__name__)

CENT = Decimal("0.01")
PERM_MANAGE_AWARD = "prizes.manage_award"
PERM_PREPARE = "prizes.prepare_payoutbatch"
PERM_APPROVE = "prizes.approve_payoutbatch"
PERM_RECONCILE = "prizes.reconcile_payouts"


def _user(actor):
    return actor if actor is not None and getattr(actor, "is_authenticated", False) else None


def _require(actor, permission: str) -> None:
    if _user(actor) is None or not actor.has_perm(permission):
        raise PrizeError("batch.not_permitted", detail={"permission": permission}, status_code=403)


# --- Policy, funds, tax -------------------------------------------------------------------------


def policy_for(campaign_id: int) -> PrizePolicy:
    """The campaign's prize policy (created with the documented defaults on first use)."""
    policy, _ = PrizePolicy.objects.get_or_create(campaign_id=campaign_id)
    return policy


def fund_for(*, campaign_id: int, sponsor_id: int | None = None, cached: bool = False) -> Fund:
    """The fund a prize is paid from: the sponsor's fund for a sponsored pool, otherwise the
    campaign's default fund. `cached`: from the prize configuration cache (the instant draw)."""
    if cached:
        fund = cached_fund(campaign_id=campaign_id, sponsor_id=sponsor_id)
    else:
        funds = Fund.objects.filter(campaign_id=campaign_id)
        fund = (
            funds.filter(sponsor_id=sponsor_id).first()
            if sponsor_id is not None
            else funds.filter(is_default=True).first()
        )
    if fund is None:
        raise PrizeError(
            "fund.not_configured",
            detail={"campaign": campaign_id, "sponsor": sponsor_id},
            status_code=409,
        )
    return fund


def tax_for(*, policy: PrizePolicy, kind: str, amount: Decimal) -> Decimal:
    """Individual income tax withheld on one invoice's prize (财税〔2007〕34号): nothing up to
    the exempt limit; above it, the rate on the whole prize, rounded half up to the cent."""
    if kind != AwardKind.CASH or amount <= policy.tax_exempt_limit:
        return ZERO
    return (amount * policy.tax_rate).quantize(CENT, rounding=ROUND_HALF_UP)


# --- Awards -------------------------------------------------------------------------------------


def _award_history(award: Award, before: str, after: str, reason: str, actor) -> None:
    insert_objects(
        [
            AwardStatusChange(
                award=award,
                from_status=before,
                to_status=after,
                reason=reason[:300],
                actor=_user(actor),
            )
        ],
        later=True,  # with the transaction's batched writes, if it has them
    )
    award_changed(award)  # rollups + government-app outbox, in this transaction


def _award_set(award: Award, target: str, *, reason: str = "", actor=None, **fields) -> None:
    """Move a locked award to `target` (checked against the transition table), with history."""
    before = award.status
    check_transition(AWARD_TRANSITIONS, before, target, entity="award")
    award.status = target
    award.status_reason = reason[:300]
    for name, value in fields.items():
        setattr(award, name, value)
    award.save(update_fields=["status", "status_reason", "updated_at", *fields])
    _award_history(award, before, target, reason, actor)


def _release(award: Award, reason: str, actor) -> None:
    ledger_move(
        fund_id=award.fund_id,
        kind=EntryKind.RELEASE,
        from_kind=AccountKind.RESERVED,
        to_kind=AccountKind.AVAILABLE,
        amount=award.amount,
        key=f"release:award:{award.pk}",
        award=award,
        memo=reason,
        actor=actor,
    )


def _new_code() -> str:
    """A coupon code: 16 characters of Crockford-like base32 (80 bits), grouped for reading."""
    alphabet = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
    raw = "".join(secrets.choice(alphabet) for _ in range(16))
    return "-".join(raw[i : i + 4] for i in range(0, 16, 4))


def _award_create(
    *,
    campaign_id: int,
    fund: Fund,
    consumer_id: int,
    invoice_id: int,
    source: str,
    kind: str,
    name: str,
    amount: Decimal,
    payable_after: datetime | None,
    now: datetime,
    instant_award=None,
    draw_winner=None,
    policy: PrizePolicy | None = None,
    reserve_options: dict | None = None,
    award_id: int | None = None,
) -> Award:
    policy = policy or policy_for(campaign_id)
    tax = tax_for(policy=policy, kind=kind, amount=amount)
    held = payable_after is not None and payable_after > now
    claim_from = payable_after if held else now
    award = Award(
        pk=award_id,
        campaign_id=campaign_id,
        fund=fund,
        consumer_id=consumer_id,
        invoice_id=invoice_id,
        source=source,
        instant_award=instant_award,
        draw_winner=draw_winner,
        kind=kind,
        name=name[:100],
        amount=amount,
        tax_withheld=tax,
        net_amount=amount - tax,
        status=AwardStatus.HELD if held else AwardStatus.PAYABLE,
        payable_after=payable_after,
        claim_until=(claim_from + timedelta(days=policy.claim_days))
        if kind == AwardKind.CASH
        else None,
    )
    # With its id drawn ahead, the INSERT goes with the transaction's batched writes.
    insert_objects([award], later=award_id is not None)
    _award_history(award, "", award.status, "awarded", None)
    # `ledger_move` creates the fund's accounts if they are missing (`ledger._account`).
    ledger_move(
        fund_id=fund.pk,
        kind=EntryKind.RESERVE,
        from_kind=AccountKind.AVAILABLE,
        to_kind=AccountKind.RESERVED,
        amount=amount,
        key=f"reserve:award:{award.pk}",
        award=award,
        memo=name,
        **(reserve_options or {}),
    )
    return award


@dataclass(frozen=True)
class InstantReservation:
    """Where an instant win's value is reserved (the fund and its account ids, from the prize
    cache) and the balance changes that reserve it ((account id, change), in lock order), for a
    draw that makes them itself."""

    fund: Fund
    account_ids: dict[str, int]
    moves: list[tuple[int, Decimal]]


def instant_reservation(*, pool, amount: Decimal) -> InstantReservation | None:
    """The reservation of an instant win of `amount` from `pool` (its fund's available →
    reserved), for the draw to make with its stock and quota UPDATEs (one statement, under its
    savepoint: `apps.draws.services._instant_win_batched`); then `award_create_for_instant(…,
    reservation=…)` writes the rest. None while the fund's accounts are not known
    (`award_create_for_instant` alone creates them).
    Raises `PrizeError` for a pool without a fund or an invalid amount, before any write."""
    fund = fund_for(campaign_id=pool.campaign_id, sponsor_id=pool.sponsor_id, cached=True)
    accounts = cached_account_ids(fund.pk)
    source, target = accounts.get(AccountKind.AVAILABLE), accounts.get(AccountKind.RESERVED)
    if source is None or target is None:
        return None
    return InstantReservation(fund, accounts, balance_moves(source, target, amount))


def award_create_for_instant(
    *,
    instant_award,
    valid_days: int | None = None,
    reservation: InstantReservation | None = None,
    award_id: int | None = None,
) -> Award:
    """Turn an instant-draw win into an award, reserving its value (call inside the draw's
    transaction: `fund.insufficient` must undo the win). Coupons and vouchers get their code.

    `reservation` (`instant_reservation`): the draw has moved its balances already, in this
    transaction; with `award_id` (drawn from the award table's sequence) every row is
    then written with the transaction's batched writes (`apps.common.queries`)."""
    tier = instant_award.tier
    pool = instant_award.pool
    # Configuration from the prize cache (this runs inside a submission). The reservation's key
    # names the award just inserted, so no earlier entry can hold it (no look-up first), and
    # the draw's own savepoint undoes everything on `fund.insufficient` (none of its own).
    if reservation is not None:
        fund, accounts = reservation.fund, reservation.account_ids
    else:
        fund = fund_for(campaign_id=pool.campaign_id, sponsor_id=pool.sponsor_id, cached=True)
        accounts = cached_account_ids(fund.pk)
    policy = cached_policy(pool.campaign_id)
    now = instant_award.drawn_at
    award = _award_create(
        policy=policy,
        award_id=award_id,
        reserve_options={
            "new_key": True,
            "savepoint": False,
            "account_ids": accounts,
            "balances_moved": reservation is not None,
        },
        campaign_id=pool.campaign_id,
        fund=fund,
        consumer_id=instant_award.consumer_id,
        invoice_id=instant_award.invoice_id,
        source=AwardSource.INSTANT,
        kind=instant_award.kind,
        name=tier.name,
        amount=instant_award.amount,
        payable_after=instant_award.payable_after,
        now=now,
        instant_award=instant_award,
    )
    if award.kind != AwardKind.CASH:
        days = tier.valid_days or valid_days or policy.coupon_valid_days
        code = _new_code()
        coupon = Coupon(
            award=award,
            code=code,
            code_last4=code[-4:],
            face_value=award.amount,
            min_spend=tier.min_spend,
            valid_industries=tier.valid_industries,
            merchant_id=pool.sponsor_id,
            valid_from=now,
            valid_until=now + timedelta(days=days),
        )
        insert_objects([coupon], later=True)  # with the draw's batched writes
    return award


def awards_create_for_draw(*, draw, actor=None) -> int:
    """Create the awards of a finalised periodic draw (one per remaining winner), reserving each
    prize in the campaign's default fund. Idempotent per winner. Returns how many were made."""
    from apps.draws.models import DrawWinner

    fund = fund_for(campaign_id=draw.campaign_id)
    now = timezone.now()
    made = 0
    winners = (
        DrawWinner.objects.filter(draw=draw, disqualified=False, award__isnull=True)
        .select_related("tier", "ticket__invoice")
        .order_by("counter")
    )
    for winner in winners:
        invoice = winner.ticket.invoice
        _award_create(
            campaign_id=draw.campaign_id,
            fund=fund,
            consumer_id=invoice.consumer_id,
            invoice_id=invoice.pk,
            source=AwardSource.PERIODIC,
            kind=AwardKind.CASH,
            name=f"{draw.code} {winner.tier.name}",
            amount=winner.tier.amount,
            payable_after=None,
            now=now,
            draw_winner=winner,
        )
        made += 1
    return made


def _lock_award(award_id: int) -> Award:
    return Award.objects.select_for_update().get(pk=award_id)


def award_cancel(*, award: Award, reason: str, actor=None) -> Award:
    """Cancel an unpaid award (red-flush, fraud, disqualification) and release its money.

    A payout already sent cannot be recalled here: if one is in flight the award is left as it
    is and, once the provider confirms payment, flagged for recovery instead.
    """
    with transaction.atomic():
        award = _lock_award(award.pk)
        if award.status not in AWARD_RESERVED_STATUSES:
            return award
        live = list(
            Payout.objects.select_for_update().filter(
                award=award,
                status__in=[*PAYOUT_IN_FLIGHT, PayoutStatus.PENDING, PayoutStatus.APPROVED],
            )
        )
        if any(p.status in PAYOUT_IN_FLIGHT for p in live):
            return award
        for payout in live:
            # An approved payout cannot be cancelled any more, only blocked (its queued send
            # then finds it blocked and sends nothing).
            _payout_set(
                payout,
                PayoutStatus.BLOCKED
                if payout.status == PayoutStatus.APPROVED
                else PayoutStatus.CANCELLED,
                via="award_cancel",
                note=reason,
                actor=actor,
            )
        _award_set(award, AwardStatus.CANCELLED, reason=reason, actor=actor)
        _release(award, reason, actor)
        Coupon.objects.filter(award=award, status=CouponStatus.ISSUED).update(
            status=CouponStatus.CANCELLED, updated_at=timezone.now()
        )
        audit_record(
            action="award.cancelled",
            target=award,
            actor=_user(actor),
            reason=reason,
            after={"amount": str(award.amount)},
        )
    for batch_id in {p.batch_id for p in live}:
        _batch_complete_if_done(batch_id)
    return award


def awards_on_invoice_reversed(*, invoice, reason: str, actor=None) -> dict[str, int]:
    """An invoice was red-flushed: cancel its unpaid prizes and flag paid ones for recovery.

    Called by `invoice_reverse` in its transaction. Returns counts for the caller's records.
    """
    counts = {"cancelled": 0, "to_recover": 0}
    for award in Award.objects.filter(invoice_id=invoice.pk).order_by("pk"):
        if award.status in AWARD_RESERVED_STATUSES:
            if (
                award_cancel(award=award, reason=reason, actor=actor).status
                == AwardStatus.CANCELLED
            ):
                counts["cancelled"] += 1
        elif award.status == AwardStatus.PAID:
            _flag_recovery(award.pk, reason, actor)
            counts["to_recover"] += 1
    return counts


def _flag_recovery(award_id: int, reason: str, actor) -> None:
    with transaction.atomic():
        award = _lock_award(award_id)
        if award.status != AwardStatus.PAID:
            return
        _award_set(award, AwardStatus.TO_RECOVER, reason=reason, actor=actor)
        audit_record(
            action="award.flagged_for_recovery",
            target=award,
            actor=_user(actor),
            reason=reason,
            after={"net_paid": str(award.net_amount)},
        )


def award_mark_recovered(*, award: Award, note: str, actor) -> Award:
    """Finance confirms the winner returned a prize paid on a reversed invoice: the money paid
    goes back to the fund's available balance."""
    if _user(actor) is None or not actor.has_perm(PERM_MANAGE_AWARD):
        raise PrizeError(
            "batch.not_permitted", detail={"permission": PERM_MANAGE_AWARD}, status_code=403
        )
    with transaction.atomic():
        award = _lock_award(award.pk)
        _award_set(award, AwardStatus.RECOVERED, reason=note, actor=actor)
        ledger_move(
            fund_id=award.fund_id,
            kind=EntryKind.RECOVER,
            from_kind=AccountKind.DISBURSED,
            to_kind=AccountKind.AVAILABLE,
            amount=award.net_amount,
            key=f"recover:award:{award.pk}",
            award=award,
            memo=note,
            actor=actor,
        )
        audit_record(
            action="award.recovered",
            target=award,
            actor=actor,
            reason=note,
            after={"amount": str(award.net_amount)},
        )
    return award


def _reverify(invoice) -> str:
    """Ask the tax authority again about an entered invoice: "ok", "reversed", "doubtful" (the
    authority no longer knows it, or its facts differ: a person must look) or "unavailable".

    A reversal found here is applied to the submission at once (which cancels its prizes)."""
    from apps.invoices.choices import RegistryStatus
    from apps.invoices.reversals import invoice_reverse
    from apps.invoices.verification import TaxOutcome, get_tax_verifier

    if invoice.status != InvoiceStatus.ACCEPTED:
        return "reversed"
    check = get_tax_verifier(cached=False).verify(
        number=invoice.number, issue_date=invoice.issue_date, total=invoice.total
    )
    if check.outcome == TaxOutcome.UNAVAILABLE:
        return "unavailable"
    if check.outcome != TaxOutcome.FOUND:
        return "doubtful"
    record = check.record
    if record.status == RegistryStatus.NORMAL:
        return "ok"
    invoice_reverse(invoice=invoice, note="found at re-verification before payout")
    invoice.refresh_from_db(fields=["status"])
    if invoice.status == InvoiceStatus.ACCEPTED and record.status == RegistryStatus.RED_FLUSHED:
        return "reversed"
    return "ok" if invoice.status == InvoiceStatus.ACCEPTED else "reversed"


def awards_release_due(*, now: datetime | None = None, limit: int = 1000) -> dict[str, int]:
    """Held awards past their delay: re-verify the invoice, then make them payable (or cancel
    them if the invoice was reversed). The scheduled task."""
    now = now or timezone.now()
    counts = {"payable": 0, "cancelled": 0, "deferred": 0}
    due = list(
        Award.objects.filter(status=AwardStatus.HELD, payable_after__lte=now)
        .select_related("invoice")
        .order_by("payable_after")[:limit]
    )
    for award in due:
        outcome = _reverify(award.invoice)
        if outcome == "unavailable":
            counts["deferred"] += 1
            continue
        if outcome == "doubtful":
            # Not paid on a doubt, not cancelled on one either: asked again a day later, and on
            # record for staff (the award admin lists held awards).
            with transaction.atomic():
                locked = _lock_award(award.pk)
                if locked.status == AwardStatus.HELD:
                    locked.payable_after = now + timedelta(days=1)
                    locked.status_reason = "invoice.reverify_failed"
                    locked.save(update_fields=["payable_after", "status_reason", "updated_at"])
                    audit_record(
                        action="award.reverify_doubtful",
                        target=locked,
                        reason="invoice.reverify_failed",
                    )
            counts["deferred"] += 1
            continue
        if outcome == "reversed":
            award_cancel(award=award, reason="invoice.red_flushed")
            counts["cancelled"] += 1
            continue
        with transaction.atomic():
            locked = _lock_award(award.pk)
            if locked.status == AwardStatus.HELD:
                _award_set(locked, AwardStatus.PAYABLE, reason="re-verified")
                counts["payable"] += 1
    return counts


def awards_expire_due(*, now: datetime | None = None, limit: int = 5000) -> dict[str, int]:
    """Unclaimed cash prizes past their claim deadline and unused coupons past their validity
    expire; their money returns to the fund. The scheduled task. Idempotent."""
    now = now or timezone.now()
    counts = {"awards": 0, "coupons": 0}
    cash = Award.objects.filter(
        status=AwardStatus.PAYABLE, kind=AwardKind.CASH, claim_until__lt=now
    ).values_list("pk", flat=True)[:limit]
    for award_id in list(cash):
        with transaction.atomic():
            award = _lock_award(award_id)
            if award.status != AwardStatus.PAYABLE or award.claim_until >= now:
                continue
            _award_set(award, AwardStatus.EXPIRED, reason="not claimed in time")
            _release(award, "expired", None)
            counts["awards"] += 1
    coupons = Coupon.objects.filter(status=CouponStatus.ISSUED, valid_until__lt=now).values_list(
        "pk", flat=True
    )[:limit]
    for coupon_id in list(coupons):
        with transaction.atomic():
            coupon = Coupon.objects.select_for_update().get(pk=coupon_id)
            if coupon.status != CouponStatus.ISSUED:
                continue
            coupon.status = CouponStatus.EXPIRED
            coupon.save(update_fields=["status", "updated_at"])
            award = _lock_award(coupon.award_id)
            if award.status in (AwardStatus.PAYABLE, AwardStatus.HELD):
                if award.status == AwardStatus.HELD:
                    _award_set(award, AwardStatus.CANCELLED, reason="coupon expired")
                else:
                    _award_set(award, AwardStatus.EXPIRED, reason="coupon expired")
                _release(award, "expired", None)
            counts["coupons"] += 1
    if counts["awards"] or counts["coupons"]:
        audit_record(action="awards.expired", category=AuditCategory.STATE, after=counts)
    return counts


# --- Coupons ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Redemption:
    coupon: Coupon
    replayed: bool


def _coupon_by_code(code: str, *, lock: bool) -> Coupon:
    field = Coupon._meta.get_field("code_index")
    candidates = field.candidates(code)
    qs = Coupon.objects.filter(code_index__in=candidates)
    if lock:
        qs = qs.select_for_update()
    coupon = qs.select_related("award").first()
    if coupon is None:
        raise PrizeError("coupon.not_found", status_code=404)
    return coupon


def _coupon_usable(coupon: Coupon, *, merchant, purchase_amount: Decimal | None, now) -> None:
    if coupon.status == CouponStatus.REDEEMED:
        raise PrizeError("coupon.already_redeemed", status_code=409)
    if coupon.status == CouponStatus.CANCELLED:
        raise PrizeError("coupon.cancelled", status_code=409)
    if coupon.status == CouponStatus.EXPIRED or (coupon.valid_until and now >= coupon.valid_until):
        raise PrizeError("coupon.expired", status_code=409)
    if coupon.award.status == AwardStatus.HELD or now < coupon.valid_from:
        raise PrizeError("coupon.not_valid_yet", status_code=409)
    if coupon.merchant_id is not None and coupon.merchant_id != merchant.pk:
        raise PrizeError("coupon.wrong_merchant", status_code=409)
    prefixes = [p.strip() for p in coupon.valid_industries.split(",") if p.strip()]
    if prefixes and not any(merchant.industry_code.startswith(p) for p in prefixes):
        raise PrizeError("coupon.wrong_industry", status_code=409)
    if (
        purchase_amount is not None
        and coupon.min_spend is not None
        and purchase_amount < coupon.min_spend
    ):
        raise PrizeError(
            "coupon.min_spend", detail={"min_spend": str(coupon.min_spend)}, status_code=409
        )


def coupon_check(*, code: str, merchant) -> Coupon:
    """A merchant looks a coupon up before the sale (no change)."""
    coupon = _coupon_by_code(code, lock=False)
    _coupon_usable(coupon, merchant=merchant, purchase_amount=None, now=timezone.now())
    return coupon


def coupon_redeem(
    *, code: str, merchant, purchase_amount: Decimal, reference: str, key_id: str = ""
) -> Redemption:
    """Redeem a coupon at a merchant, once.

    The coupon row is locked, so two tills redeeming the same code at the same moment get one
    success and one `coupon.already_redeemed`. The merchant's `reference` makes its own retry
    of the same request return the first result instead of an error.
    """
    reference = (reference or "").strip()[:64]
    if not reference:
        raise PrizeError("coupon.reference_required", _reference_message())
    with transaction.atomic():
        coupon = _coupon_by_code(code, lock=True)
        if (
            coupon.status == CouponStatus.REDEEMED
            and coupon.redeemed_by_id == merchant.pk
            and (coupon.redemption_ref == reference)
        ):
            return Redemption(coupon=coupon, replayed=True)
        if Coupon.objects.filter(redeemed_by=merchant, redemption_ref=reference).exists():
            raise PrizeError("coupon.reference_reused", status_code=409)
        now = timezone.now()
        _coupon_usable(coupon, merchant=merchant, purchase_amount=purchase_amount, now=now)
        award = _lock_award(coupon.award_id)
        coupon.status = CouponStatus.REDEEMED
        coupon.redeemed_at = now
        coupon.redeemed_by = merchant
        coupon.redeemed_key_id = key_id[:40]
        coupon.purchase_amount = purchase_amount
        coupon.redemption_ref = reference
        try:
            with transaction.atomic():
                coupon.save()
        except IntegrityError:  # the same reference used concurrently for another coupon
            raise PrizeError("coupon.reference_reused", status_code=409) from None
        _award_set(award, AwardStatus.PAID, reason="redeemed", paid_at=now)
        ledger_move(
            fund_id=award.fund_id,
            kind=EntryKind.DISBURSE,
            from_kind=AccountKind.RESERVED,
            to_kind=AccountKind.DISBURSED,
            amount=award.amount,
            key=f"redeem:award:{award.pk}",
            award=award,
            memo=f"redeemed at {merchant.uscc}",
        )
        audit_record(
            action="coupon.redeemed",
            target=coupon,
            reason=reference,
            after={"merchant": merchant.uscc, "key": key_id, "value": str(coupon.face_value)},
        )
    return Redemption(coupon=coupon, replayed=False)


def _reference_message():
    from django.utils.translation import gettext_lazy as _

    return _("A redemption needs the merchant's reference.")


# --- Payout accounts and claims -----------------------------------------------------------------


def payout_account_register(
    *, consumer, kind: str, account_no: str, bank_name: str = ""
) -> PayoutAccount:
    """Register a payout account after the identity service confirms it is in the consumer's
    verified name. The same account again returns the existing row."""
    from apps.accounts.identity import (
        get_identity_verifier,
        is_well_formed_account,
        normalize_account_no,
    )

    # Bank cards lose spaces and dashes; a wallet id keeps its case (the provider's ids are
    # case-sensitive), only the blind index compares case-insensitively.
    number = normalize_account_no(kind, account_no or "")
    if kind not in PayoutAccountKind.values or not is_well_formed_account(kind, number):
        raise PrizeError("account.invalid_number")
    if not consumer.is_verified:
        raise PrizeError("account.not_verified_consumer", status_code=403)
    index = PayoutAccount._meta.get_field("account_no_index").candidates(number)
    existing = PayoutAccount.objects.filter(consumer=consumer, account_no_index__in=index).first()
    if existing is not None and existing.status == PayoutAccountStatus.VERIFIED:
        return existing
    check = get_identity_verifier().verify_account(
        name=consumer.real_name,
        id_number=consumer.id_number,
        account_type=kind,
        account_no=number,
    )
    if not check.is_answer:
        raise PrizeError("account.check_unavailable", status_code=503)
    status = PayoutAccountStatus.VERIFIED if check.match else PayoutAccountStatus.REJECTED
    with transaction.atomic():
        if existing is None:
            account = PayoutAccount(consumer=consumer, kind=kind, account_no=number)
        else:
            account = PayoutAccount.objects.select_for_update().get(pk=existing.pk)
        account.account_last4 = number[-4:]
        account.bank_name = bank_name[:100]
        account.status = status
        account.check_code = check.code[:40]
        account.verified_at = timezone.now() if check.match else None
        try:
            with transaction.atomic():
                account.save()
        except IntegrityError:
            account = PayoutAccount.objects.get(consumer=consumer, account_no_index__in=index)
        audit_record(
            action="payout_account.registered",
            target=account,
            after={"status": status, "kind": kind, "last4": number[-4:], "code": check.code},
        )
    if not check.match:
        raise PrizeError("account.ownership_failed", detail={"code": check.code})
    return account


def _request_no() -> str:
    return "PO" + timezone.localdate().strftime("%Y%m%d") + secrets.token_hex(8).upper()


def award_claim(*, consumer, award: Award, account: PayoutAccount) -> Payout:
    """A winner claims a payable cash prize to one of their verified accounts.

    The award row lock (and the one-live-payout-per-award index) makes parallel claims of the
    same prize produce one payout; claiming again returns that payout.
    """
    with transaction.atomic():
        award = _lock_award(award.pk)
        if award.consumer_id != consumer.pk:
            raise PrizeError("award.not_found", status_code=404)
        if award.status == AwardStatus.CLAIMED:
            live = Payout.objects.filter(award=award, status__in=PAYOUT_LIVE_OR_PENDING).first()
            if live is not None:
                return live
        if award.kind != AwardKind.CASH:
            raise PrizeError("award.not_cash", status_code=409)
        if award.status != AwardStatus.PAYABLE:
            raise PrizeError("award.not_payable", detail={"status": award.status}, status_code=409)
        now = timezone.now()
        if award.claim_until is not None and now >= award.claim_until:
            raise PrizeError("award.claim_expired", status_code=409)
        if account.consumer_id != consumer.pk or account.status != PayoutAccountStatus.VERIFIED:
            raise PrizeError("account.not_usable", status_code=409)
        payout = Payout.objects.create(
            request_no=_request_no(),
            award=award,
            account=account,
            amount=award.net_amount,
            tax_withheld=award.tax_withheld,
        )
        _payout_history(payout, "", PayoutStatus.PENDING, "claim", "", None)
        _award_set(award, AwardStatus.CLAIMED, reason="claimed", claimed_at=now)
        audit_record(
            action="award.claimed",
            target=award,
            after={
                "payout": payout.request_no,
                "account_last4": account.account_last4,
                "amount": str(payout.amount),
                "tax": str(payout.tax_withheld),
            },
        )
    return payout


PAYOUT_LIVE_OR_PENDING = [
    PayoutStatus.PENDING,
    PayoutStatus.APPROVED,
    PayoutStatus.SENDING,
    PayoutStatus.PROCESSING,
    PayoutStatus.UNKNOWN,
    PayoutStatus.PAID,
]


# --- Payout batches (maker / checker) -----------------------------------------------------------


def _batch_reference() -> str:
    return "PB" + timezone.localdate().strftime("%Y%m%d") + secrets.token_hex(4).upper()


def payout_batch_prepare(*, campaign, actor, limit: int = 5000) -> PayoutBatch:
    """The finance maker gathers claimed payouts not yet in a batch into a batch awaiting a
    checker's approval. Rows already taken by a concurrent preparation are skipped."""
    _require(actor, PERM_PREPARE)
    with transaction.atomic():
        ids = list(
            Payout.objects.select_for_update(skip_locked=True)
            .filter(status=PayoutStatus.PENDING, batch__isnull=True, award__campaign=campaign)
            .order_by("pk")
            .values_list("pk", flat=True)[:limit]
        )
        if not ids:
            raise PrizeError("batch.empty", status_code=409)
        batch = PayoutBatch.objects.create(
            reference=_batch_reference(),
            campaign=campaign,
            created_by=actor,
            submitted_at=timezone.now(),
        )
        Payout.objects.filter(pk__in=ids).update(batch=batch, updated_at=timezone.now())
        totals = Payout.objects.filter(batch=batch).aggregate(
            n=Count("pk"), amount=Sum("amount"), tax=Sum("tax_withheld")
        )
        batch.payout_count = totals["n"]
        batch.total_amount = totals["amount"] or ZERO
        batch.total_tax = totals["tax"] or ZERO
        batch.save(update_fields=["payout_count", "total_amount", "total_tax", "updated_at"])
        audit_record(
            action="payout_batch.prepared",
            target=batch,
            actor=actor,
            after={
                "payouts": batch.payout_count,
                "amount": str(batch.total_amount),
                "tax": str(batch.total_tax),
            },
        )
    return batch


def payout_batch_approve(*, batch: PayoutBatch, actor) -> PayoutBatch:
    """A finance checker — never the batch's maker — approves it; its payouts are then sent.

    The batch row lock makes parallel approvals one transition."""
    _require(actor, PERM_APPROVE)
    with transaction.atomic():
        batch = PayoutBatch.objects.select_for_update().get(pk=batch.pk)
        maker_is_checker = batch.created_by_id == actor.pk
        if maker_is_checker:
            # Committed (the refusal is raised after the block): attempts are on record.
            audit_record(
                action="payout_batch.approve_refused",
                target=batch,
                actor=actor,
                category=AuditCategory.SECURITY,
                reason="maker_is_checker",
                outcome="denied",
            )
    if maker_is_checker:
        raise PrizeError("batch.maker_is_checker", status_code=403)
    with transaction.atomic():
        batch = PayoutBatch.objects.select_for_update().get(pk=batch.pk)
        check_transition(
            BATCH_TRANSITIONS, batch.status, BatchStatus.APPROVED, entity="payout_batch"
        )
        batch.status = BatchStatus.APPROVED
        batch.approved_by = actor
        batch.approved_at = timezone.now()
        batch.save(update_fields=["status", "approved_by", "approved_at", "updated_at"])
        payouts = list(
            Payout.objects.select_for_update().filter(batch=batch, status=PayoutStatus.PENDING)
        )
        for payout in payouts:
            _payout_set(payout, PayoutStatus.APPROVED, via="approval", actor=actor)
        audit_record(
            action="payout_batch.approved",
            target=batch,
            actor=actor,
            after={"payouts": len(payouts), "amount": str(batch.total_amount)},
        )
        ids = [p.pk for p in payouts]
        transaction.on_commit(lambda: _enqueue_sends(ids))
    # A batch whose payouts were all cancelled before approval has nothing left to send.
    _batch_complete_if_done(batch.pk)
    return batch


def _enqueue_sends(ids: list[int]) -> None:
    from .tasks import payout_send_task

    for payout_id in ids:
        try:
            payout_send_task.delay(payout_id)
        except Exception:  # the minute poller sends whatever could not be queued or sent now
            logger.exception("payout %s: could not be sent now; the poller will retry", payout_id)


def payout_batch_reject(*, batch: PayoutBatch, reason: str, actor) -> PayoutBatch:
    """The checker sends a batch back: its payouts return to the pool for a new batch."""
    _require(actor, PERM_APPROVE)
    if not reason.strip():
        raise PrizeError("batch.reason_required", _reason_required())
    with transaction.atomic():
        batch = PayoutBatch.objects.select_for_update().get(pk=batch.pk)
        check_transition(
            BATCH_TRANSITIONS, batch.status, BatchStatus.REJECTED, entity="payout_batch"
        )
        batch.status = BatchStatus.REJECTED
        batch.rejected_reason = reason[:300]
        batch.save(update_fields=["status", "rejected_reason", "updated_at"])
        Payout.objects.filter(batch=batch, status=PayoutStatus.PENDING).update(
            batch=None, updated_at=timezone.now()
        )
        audit_record(action="payout_batch.rejected", target=batch, actor=actor, reason=reason)
    return batch


def _reason_required():
    from django.utils.translation import gettext_lazy as _

    return _("Give a reason.")


def _batch_complete_if_done(batch_id: int | None) -> None:
    if batch_id is None:
        return
    open_left = Payout.objects.filter(
        batch_id=batch_id,
        status__in=[PayoutStatus.PENDING, PayoutStatus.APPROVED, *PAYOUT_IN_FLIGHT],
    ).exists()
    if not open_left:
        PayoutBatch.objects.filter(pk=batch_id, status=BatchStatus.APPROVED).update(
            status=BatchStatus.COMPLETED, updated_at=timezone.now()
        )


# --- Payouts ------------------------------------------------------------------------------------


def _payout_history(payout, before, after, via, note, actor) -> None:
    PayoutStatusChange.objects.create(
        payout=payout,
        from_status=before,
        to_status=after,
        via=via[:24],
        note=note[:300],
        actor=_user(actor),
    )


def _payout_set(
    payout: Payout, target: str, *, via: str, note: str = "", actor=None, **fields
) -> None:
    before = payout.status
    check_transition(PAYOUT_TRANSITIONS, before, target, entity="payout")
    payout.status = target
    for name, value in fields.items():
        setattr(payout, name, value)
    payout.save(update_fields=["status", "updated_at", *fields])
    _payout_history(payout, before, target, via, note, actor)


def _transfer_request(payout: Payout) -> gw.TransferRequest:
    account = payout.account
    consumer = account.consumer
    return gw.TransferRequest(
        request_no=payout.request_no,
        amount=payout.amount,
        account_type=account.kind,
        account_no=str(account.account_no),
        account_name=str(consumer.real_name),
        memo=f"prize {payout.award.public_id}",
    )


def payout_send(*, payout_id: int) -> Payout:
    """Send one approved payout, or carry on with one interrupted while sending.

    Safe to run any number of times (the Celery task is `acks_late` and may be redelivered
    after a worker dies): SENDING is committed before the request leaves, and a payout found in
    SENDING is first asked about (status query) and re-sent only under the same request number,
    which the provider executes at most once.
    """
    payout = Payout.objects.select_related("award__invoice", "account__consumer").get(pk=payout_id)
    if payout.status == PayoutStatus.APPROVED:
        policy = policy_for(payout.award.campaign_id)
        if policy.reverify_before_payout:
            outcome = _reverify(payout.award.invoice)
            if outcome == "unavailable":
                return payout  # try again later (the poller picks approved payouts up)
            if outcome in ("reversed", "doubtful"):
                _payout_block(payout.pk, doubtful=outcome == "doubtful")
                return Payout.objects.get(pk=payout.pk)
        with transaction.atomic():
            payout = Payout.objects.select_for_update().get(pk=payout_id)
            if payout.status != PayoutStatus.APPROVED:
                return payout
            _payout_set(
                payout,
                PayoutStatus.SENDING,
                via="send",
                attempts=payout.attempts + 1,
                sent_at=timezone.now(),
            )
        payout = Payout.objects.select_related("award", "account__consumer").get(pk=payout_id)
        result = gw.get_payment_gateway().transfer(_transfer_request(payout))
        return payout_apply_result(payout_id=payout_id, result=result, via="send")
    if payout.status == PayoutStatus.SENDING:
        # Interrupted after SENDING was committed: did the request reach the provider?
        gateway = gw.get_payment_gateway()
        result = gateway.query(payout.request_no)
        if result.status == gw.TransferStatus.NOT_FOUND:
            with transaction.atomic():
                locked = Payout.objects.select_for_update().get(pk=payout_id)
                if locked.status != PayoutStatus.SENDING:
                    return locked
                locked.attempts += 1
                locked.save(update_fields=["attempts", "updated_at"])
            result = gateway.transfer(_transfer_request(payout))
        return payout_apply_result(payout_id=payout_id, result=result, via="resend")
    return payout


def _payout_block(payout_id: int, *, doubtful: bool = False) -> None:
    """Stop a payout found unsafe at re-verification. A reversed invoice cancels the award; a
    doubtful answer (not found, facts differ) holds it again for a day, to be re-verified by
    `awards_release_due` before the winner can claim again."""
    code = "invoice.reverify_failed" if doubtful else "invoice.red_flushed"
    with transaction.atomic():
        payout = Payout.objects.select_for_update().get(pk=payout_id)
        if payout.status not in (PayoutStatus.APPROVED, PayoutStatus.PENDING):
            return
        _payout_set(payout, PayoutStatus.BLOCKED, via="reverify", note=code, fail_code=code)
        award = _lock_award(payout.award_id)
        if doubtful and award.status == AwardStatus.CLAIMED:
            _award_set(
                award,
                AwardStatus.HELD,
                reason=code,
                payable_after=timezone.now() + timedelta(days=1),
            )
        elif award.status in AWARD_RESERVED_STATUSES:
            _award_set(award, AwardStatus.CANCELLED, reason=code)
            _release(award, code, None)
        audit_record(action="payout.blocked", target=payout, reason=code)
        batch_id = payout.batch_id
    _batch_complete_if_done(batch_id)


def payout_apply_result(
    *, payout_id: int, result: gw.TransferResult, via: str, actor=None
) -> Payout:
    """Apply the provider's word on a payout (reply, status query, callback or statement).

    SUCCESS pays (ledger: reserved → paid and tax withheld), FAILED returns the prize to the
    winner to claim again, PROCESSING waits, UNKNOWN waits for a query. A payout already final
    is left alone (duplicate callbacks are harmless); a provider amount different from ours is
    never applied but logged for finance.
    """
    status_map = {
        gw.TransferStatus.SUCCESS: PayoutStatus.PAID,
        gw.TransferStatus.FAILED: PayoutStatus.FAILED,
        gw.TransferStatus.PROCESSING: PayoutStatus.PROCESSING,
        gw.TransferStatus.UNKNOWN: PayoutStatus.UNKNOWN,
    }
    target = status_map.get(result.status)
    with transaction.atomic():
        payout = Payout.objects.select_for_update().get(pk=payout_id)
        if target is None or payout.status == target:
            return payout
        if target == PayoutStatus.UNKNOWN and payout.status == PayoutStatus.PROCESSING:
            # A query we could not read says nothing new about a transfer the provider said it
            # is processing: keep its word (the poller asks again).
            return payout
        if payout.status not in PAYOUT_IN_FLIGHT:
            if payout.status in (PayoutStatus.PAID, PayoutStatus.FAILED) and target in (
                PayoutStatus.PAID,
                PayoutStatus.FAILED,
            ):
                # The provider contradicts a final outcome: finance must look (never auto-fixed).
                logger.error(
                    "payout %s: provider says %s after %s",
                    payout.request_no,
                    result.status,
                    payout.status,
                )
                audit_record(
                    action="payout.contradiction",
                    target=payout,
                    outcome="failure",
                    category=AuditCategory.SECURITY,
                    after={"ours": payout.status, "provider": str(result.status), "via": via},
                )
            return payout
        if (
            target == PayoutStatus.PAID
            and result.amount is not None
            and (result.amount != payout.amount)
        ):
            audit_record(
                action="payout.amount_mismatch",
                target=payout,
                outcome="failure",
                category=AuditCategory.SECURITY,
                after={"ours": str(payout.amount), "provider": str(result.amount), "via": via},
            )
        fields = {"provider_ref": result.provider_ref[:64] or payout.provider_ref}
        if target in (PayoutStatus.PAID, PayoutStatus.FAILED):
            fields["finished_at"] = result.finished_at or timezone.now()
        if target == PayoutStatus.FAILED:
            fields["fail_code"] = result.fail_code[:64]
            fields["fail_message"] = result.fail_message[:300]
        _payout_set(payout, target, via=via, note=result.fail_code, actor=actor, **fields)
        award = _lock_award(payout.award_id)
        if target == PayoutStatus.PAID:
            _settle_paid(payout, award, actor)
        elif target == PayoutStatus.FAILED and award.status == AwardStatus.CLAIMED:
            if award.invoice.status != InvoiceStatus.ACCEPTED:
                # Reversed while the payment was on its way (award_cancel had to wait for the
                # provider's answer): nothing is owed any more, the money returns.
                _award_set(award, AwardStatus.CANCELLED, reason="invoice.red_flushed", actor=actor)
                _release(award, "invoice.red_flushed", actor)
            else:
                _award_set(
                    award,
                    AwardStatus.PAYABLE,
                    reason=f"payout failed: {result.fail_code}",
                    actor=actor,
                )
        audit_record(
            action=f"payout.{target}",
            target=payout,
            actor=_user(actor),
            after={"via": via, "provider_ref": payout.provider_ref, "fail_code": payout.fail_code},
        )
        batch_id = payout.batch_id
    _batch_complete_if_done(batch_id)
    return payout


def _settle_paid(payout: Payout, award: Award, actor) -> None:
    ledger_move(
        fund_id=award.fund_id,
        kind=EntryKind.DISBURSE,
        from_kind=AccountKind.RESERVED,
        to_kind=AccountKind.DISBURSED,
        amount=payout.amount,
        key=f"disburse:payout:{payout.pk}",
        award=award,
        payout=payout,
        memo=payout.request_no,
        actor=actor,
    )
    if payout.tax_withheld > 0:
        ledger_move(
            fund_id=award.fund_id,
            kind=EntryKind.WITHHOLD_TAX,
            from_kind=AccountKind.RESERVED,
            to_kind=AccountKind.TAX_WITHHELD,
            amount=payout.tax_withheld,
            key=f"tax:payout:{payout.pk}",
            award=award,
            payout=payout,
            memo=payout.request_no,
            actor=actor,
        )
    if award.status in (AwardStatus.CLAIMED, AwardStatus.PAYABLE):
        _award_set(
            award,
            AwardStatus.PAID,
            reason=payout.request_no,
            actor=actor,
            paid_at=payout.finished_at,
        )
    elif award.status == AwardStatus.CANCELLED:
        # Cancelled while the payment was on its way (cannot happen through award_cancel,
        # which leaves in-flight awards alone): keep the books straight regardless.
        logger.error("award %s paid after cancellation", award.pk)
    if award.status == AwardStatus.PAID and award.invoice.status == InvoiceStatus.REVERSED:
        _award_set(
            award, AwardStatus.TO_RECOVER, reason="invoice reversed before payment", actor=actor
        )


def payout_refresh(*, payout_id: int) -> Payout:
    """Ask the provider about a payout whose outcome we do not know yet (UNKNOWN, PROCESSING,
    or SENDING for too long). A provider that never received it gets the very same request
    number again — the only way a payout is ever re-sent."""
    payout = Payout.objects.get(pk=payout_id)
    if payout.status == PayoutStatus.SENDING:
        return payout_send(payout_id=payout_id)
    if payout.status not in (PayoutStatus.UNKNOWN, PayoutStatus.PROCESSING):
        return payout
    gateway = gw.get_payment_gateway()
    result = gateway.query(payout.request_no)
    if result.status == gw.TransferStatus.NOT_FOUND:
        with transaction.atomic():
            locked = Payout.objects.select_for_update().get(pk=payout_id)
            if locked.status not in (PayoutStatus.UNKNOWN, PayoutStatus.PROCESSING):
                return locked
            _payout_set(
                locked,
                PayoutStatus.SENDING,
                via="query",
                note="not received",
                attempts=locked.attempts + 1,
            )
        full = Payout.objects.select_related("award", "account__consumer").get(pk=payout_id)
        result = gateway.transfer(_transfer_request(full))
        return payout_apply_result(payout_id=payout_id, result=result, via="resend")
    return payout_apply_result(payout_id=payout_id, result=result, via="query")


def payouts_poll(*, older_than_seconds: int = 60, limit: int = 500) -> int:
    """The scheduled sweep: approved payouts not yet sent, and payouts whose outcome is not
    known, are sent or asked about again. Returns how many were looked at."""
    cutoff = timezone.now() - timedelta(seconds=older_than_seconds)
    ids = list(
        Payout.objects.filter(
            Q(status=PayoutStatus.APPROVED)
            | Q(status__in=list(PAYOUT_IN_FLIGHT), updated_at__lte=cutoff)
        )
        .order_by("updated_at")
        .values_list("pk", flat=True)[:limit]
    )
    for payout_id in ids:
        try:
            payout = Payout.objects.get(pk=payout_id)
            if payout.status == PayoutStatus.APPROVED:
                payout_send(payout_id=payout_id)
            else:
                payout_refresh(payout_id=payout_id)
        except Exception:  # one bad payout must not stop the sweep
            logger.exception("payout %s: poll failed", payout_id)
    return len(ids)


def payout_callback(*, method: str, path: str, headers, body: bytes) -> Payout | None:
    """A provider callback: verified (signature, time, nonce) by the gateway adapter, then
    applied like any other provider answer. Unknown request numbers are ignored (logged)."""
    result = gw.get_payment_gateway().parse_callback(
        method=method, path=path, headers=headers, body=body
    )
    payout = Payout.objects.filter(request_no=result.request_no).first()
    if payout is None:
        logger.warning("callback for unknown request number %s", result.request_no)
        return None
    return payout_apply_result(payout_id=payout.pk, result=result, via="callback")


# --- Reconciliation -----------------------------------------------------------------------------


def statement_reconcile(
    *, day: date, data: bytes, file_name: str = "", actor=None
) -> ProviderStatement:
    """Compare the provider's statement of `day` with our payouts and list every difference.

    Payouts still UNKNOWN/PROCESSING are settled by the statement (it is the provider's answer);
    every real mismatch — paid here but missing there, there but not paid here, wrong amount,
    wrong status, unreadable line — becomes an issue for finance. Nothing else is changed.
    """
    import hashlib

    if actor is not None:
        _require(actor, PERM_RECONCILE)
    digest = hashlib.sha256(data).hexdigest()
    if ProviderStatement.objects.filter(sha256=digest).exists():
        raise PrizeError("statement.duplicate", status_code=409)
    lines, bad = gw.parse_statement(data)
    statement = ProviderStatement.objects.create(
        day=day,
        file_name=file_name[:200],
        sha256=digest,
        line_count=len(lines) + len(bad),
        imported_by=_user(actor),
    )
    issues: list[ReconciliationIssue] = []
    for line_no, error in bad:
        issues.append(
            ReconciliationIssue(
                statement=statement, kind=MismatchKind.BAD_LINE, line_no=line_no, theirs=error[:200]
            )
        )
    seen: set[str] = set()
    matched = settled = 0
    by_no = {
        p.request_no: p
        for p in Payout.objects.filter(request_no__in=[line.request_no for line in lines])
    }
    for line in lines:
        seen.add(line.request_no)
        payout = by_no.get(line.request_no)
        if payout is None:
            issues.append(
                ReconciliationIssue(
                    statement=statement,
                    kind=MismatchKind.EXTRA_AT_PROVIDER,
                    line_no=line.line_no,
                    request_no=line.request_no,
                    theirs=f"{line.status} {line.amount}",
                )
            )
            continue
        if payout.status in PAYOUT_IN_FLIGHT and line.status in ("SUCCESS", "FAILED"):
            payout = payout_apply_result(
                payout_id=payout.pk,
                result=gw.TransferResult(
                    request_no=line.request_no,
                    status=gw.TransferStatus(line.status),
                    provider_ref=line.provider_ref,
                    amount=line.amount,
                    finished_at=line.finished_at,
                ),
                via="statement",
                actor=actor,
            )
            settled += 1
        ours_status = {"paid": "SUCCESS", "failed": "FAILED"}.get(payout.status, payout.status)
        if line.amount != payout.amount:
            issues.append(
                ReconciliationIssue(
                    statement=statement,
                    kind=MismatchKind.AMOUNT,
                    payout=payout,
                    line_no=line.line_no,
                    request_no=line.request_no,
                    ours=str(payout.amount),
                    theirs=str(line.amount),
                )
            )
        elif ours_status != line.status:
            issues.append(
                ReconciliationIssue(
                    statement=statement,
                    kind=MismatchKind.STATUS,
                    payout=payout,
                    line_no=line.line_no,
                    request_no=line.request_no,
                    ours=payout.status,
                    theirs=line.status,
                )
            )
        else:
            matched += 1
    local = timezone.get_current_timezone()
    start = datetime.combine(day, datetime.min.time(), tzinfo=local)
    missing = Payout.objects.filter(
        status=PayoutStatus.PAID, finished_at__gte=start, finished_at__lt=start + timedelta(days=1)
    ).exclude(request_no__in=seen)
    for payout in missing:
        issues.append(
            ReconciliationIssue(
                statement=statement,
                kind=MismatchKind.MISSING_AT_PROVIDER,
                payout=payout,
                request_no=payout.request_no,
                ours=f"paid {payout.amount}",
            )
        )
    ReconciliationIssue.objects.bulk_create(issues)
    statement.matched_count = matched
    statement.mismatch_count = len(issues)
    statement.resolved_unknown_count = settled
    statement.save(
        update_fields=["matched_count", "mismatch_count", "resolved_unknown_count", "updated_at"]
    )
    audit_record(
        action="statement.reconciled",
        target=statement,
        actor=_user(actor),
        after={
            "day": day.isoformat(),
            "lines": statement.line_count,
            "matched": matched,
            "mismatches": len(issues),
            "settled": settled,
        },
    )
    return statement


def reconciliation_resolve(*, issue: ReconciliationIssue, note: str, actor) -> ReconciliationIssue:
    """Finance records how a mismatch was settled (outside the platform or by a correction)."""
    _require(actor, PERM_RECONCILE)
    if not note.strip():
        raise PrizeError("batch.reason_required", _reason_required())
    with transaction.atomic():
        issue = ReconciliationIssue.objects.select_for_update().get(pk=issue.pk)
        issue.resolved = True
        issue.resolved_by = actor
        issue.resolution_note = note[:300]
        issue.save(update_fields=["resolved", "resolved_by", "resolution_note", "updated_at"])
        audit_record(action="reconciliation.resolved", target=issue, actor=actor, reason=note)
    return issue
