"""The submission pipeline: one service decides, with a stable reason, whether an invoice enters.

Every channel (API, admin, imports) calls `invoice_submit`. Steps:

1. parse and normalise (full-width digits, spaces; QR payload or fields);
2. completeness: number, issue date and total are all there;
3. uniqueness: one live submission per number across the city, forever — a partial unique
   index decides races, the loser gets `invoice.duplicate`;
4. authenticity at the tax authority (`apps.invoices.verification`); "not found yet" or an
   unreachable service leaves the invoice pending, re-checked with back-off by Celery beat;
5. real-name match: the buyer is the consumer's verified real name;
6. eligibility under the campaign's rules (`apps.invoices.eligibility`);
7. per-consumer caps per day/week/month/campaign in Asia/Shanghai time, counted under a row
   lock on the consumer so parallel submissions cannot overshoot;
8. the risk hook (allow / hold for review / block);
9. entry: the invoice is accepted into the campaign and the instant-draw hook runs.

Rejected attempts are kept (status `rejected` is not live, so they never block the rightful
buyer); each step's outcome is a row of the invoice's status history. Consumer submissions are
recorded in that history rather than the audit trail; staff decisions are audited.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import date, timedelta
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from apps.accounts.choices import ConsumerStatus, VerificationStatus
from apps.accounts.models import Consumer
from apps.audit.models import AuditCategory
from apps.audit.services import audit_record
from apps.common.exceptions import DomainError
from apps.common.normalize import normalize_code
from apps.common.queries import (
    GENERIC_PLANS_SETTING,
    batched_writes,
    fetch_one,
    insert_objects,
    model_from_row,
    model_row_query,
    next_ids_query,
    read_ahead,
)
from apps.common.states import check_transition
from apps.draws.services import instant_draw_for_entry
from apps.reporting.rollups import deferred as deferred_rollups
from apps.reporting.rollups import invoice_changed
from apps.risk.notify import notify_review_outcome
from apps.risk.services import (
    RiskAction,
    device_fingerprint,
    risk_assess_submission,
    risk_assessment_save,
)

from .caching import campaign_and_merchant
from .choices import INVOICE_TRANSITIONS, LIVE_INVOICE_STATUSES, InvoiceStatus, SourceChannel
from .eligibility import CampaignRules, eligibility_failure
from .exceptions import InvoiceRejected
from .models import Invoice, InvoiceStatusChange
from .validators import parse_invoice_qr, validate_invoice_number
from .verification import TaxCheck, TaxOutcome, get_tax_verifier

# Statuses that count against a consumer's caps: every entry, including held and reversed ones.
CAP_STATUSES = (InvoiceStatus.ACCEPTED, InvoiceStatus.HELD, InvoiceStatus.REVERSED)
MAX_TOTAL = Decimal("99999999999.99")
# Plain yuan amounts only: no sign, exponent, or more than two decimals.
TOTAL_PATTERN = re.compile(r"^[0-9]{1,11}(\.[0-9]{1,2})?$")


@dataclass(frozen=True)
class InvoiceQuestion:
    """A submission reduced to what the tax authority verifies: number + date + total."""

    number: str
    issue_date: date
    total: Decimal
    invoice_type: str = ""
    device_hash: str = ""  # keyed hash of the client's device ID (risk control), "" for none


@dataclass(frozen=True)
class SubmissionResult:
    invoice: Invoice
    instant_prize: dict | None = None


def _validation_to_domain(exc: ValidationError) -> DomainError:
    code = getattr(exc, "code", None) or "invoice.invalid"
    return DomainError(code, " ".join(str(m) for m in exc.messages), status_code=400)


def parse_submission(data: Mapping, *, today: date | None = None) -> InvoiceQuestion:
    """Steps 1–2: a QR payload, or the three fields, normalised and validated."""
    today = today or timezone.localdate()
    qr = data.get("qr")
    if qr not in (None, ""):
        try:
            parsed = parse_invoice_qr(qr, today=today)
        except ValidationError as exc:
            raise _validation_to_domain(exc) from exc
        return InvoiceQuestion(parsed.number, parsed.issue_date, parsed.total, parsed.invoice_type)
    number, issue_date, total = data.get("number"), data.get("issue_date"), data.get("total")
    if number in (None, "") or issue_date in (None, "") or total in (None, ""):
        raise InvoiceRejected("invoice.incomplete")
    try:
        number = validate_invoice_number(number, today=today)
    except ValidationError as exc:
        raise _validation_to_domain(exc) from exc
    if not isinstance(issue_date, date):
        try:
            issue_date = date.fromisoformat(normalize_code(str(issue_date)))
        except ValueError:
            raise InvoiceRejected("invoice.invalid_date") from None
    if issue_date > today:
        raise InvoiceRejected("invoice.future_date")
    try:
        text = normalize_code(str(total))
    except ValidationError:
        raise InvoiceRejected("invoice.invalid_total") from None
    if not TOTAL_PATTERN.match(text):
        raise InvoiceRejected("invoice.invalid_total")
    total = Decimal(text)
    if total <= 0 or total > MAX_TOTAL:
        raise InvoiceRejected("invoice.invalid_total")
    return InvoiceQuestion(number, issue_date, total.quantize(Decimal("0.01")))


def _history(
    invoice: Invoice, from_status: str, to_status: str, code: str = "", note: str = "", actor=None
):
    _history_steps(invoice, [(from_status, to_status, code, note)], actor)


def _history_steps(invoice: Invoice, steps: list[tuple[str, str, str, str]], actor=None) -> None:
    """Rows of the invoice's status history, (from, to, code, note) each, in one INSERT (sent
    with the transaction's other batched writes when there are some: `batched_writes`)."""
    actor = actor if getattr(actor, "is_authenticated", False) else None
    at = timezone.now()
    insert_objects(
        [
            InvoiceStatusChange(
                invoice=invoice,
                from_status=from_status,
                to_status=to_status,
                code=code,
                note=note[:500],
                actor=actor,
                at=at,
            )
            for from_status, to_status, code, note in steps
        ],
        later=True,
    )
    invoice_changed(invoice)  # rollups + government-app outbox, in this transaction


def _new_invoice(consumer: Consumer, question: InvoiceQuestion, channel: str) -> Invoice:
    return Invoice(
        number=question.number,
        issue_date=question.issue_date,
        total=question.total,
        invoice_type=question.invoice_type or "32",
        consumer=consumer,
        source_channel=channel,
        submitted_at=timezone.now(),
        device_hash=question.device_hash,
    )


def _fill_from_record(invoice: Invoice, record, consumer_name: str, matched: bool) -> None:
    invoice.invoice_type = record.invoice_type
    invoice.issued_at = record.issued_at
    invoice.seller_uscc = record.seller_uscc
    invoice.seller_name = record.seller_name
    invoice.buyer_tax_id = record.buyer_tax_id
    invoice.amount, invoice.tax, invoice.total = record.amount, record.tax, record.total
    invoice.buyer_name = consumer_name if matched else (record.buyer_name or "")


def _record_rejection(
    consumer: Consumer, question: InvoiceQuestion, channel: str, code: str, *, record=None
) -> Invoice:
    """Keep a rejected attempt on record (not live: it never blocks anybody)."""
    with transaction.atomic(), batched_writes(commit=True), deferred_rollups():
        invoice = _new_invoice(consumer, question, channel)
        if record is not None:
            _fill_from_record(invoice, record, "", matched=False)
            if invoice.total != question.total:  # keep what the consumer claimed
                invoice.amount = invoice.tax = None
                invoice.total = question.total
        invoice.status = InvoiceStatus.REJECTED
        invoice.rejection_code = code
        invoice.decided_at = invoice.submitted_at
        insert_objects([invoice])
        _history(invoice, "", InvoiceStatus.REJECTED, code)
    return invoice


def _cap_counts_query(consumer_id: int, campaign_id: int, at) -> tuple[str, list]:
    """The consumer's entries in the campaign this local day, week (from Monday), month and
    overall (`CAP_STATUSES`), in one statement. Plain SQL: it runs on every submission, and
    the ORM spent more time compiling the four filtered counts than the database answering."""
    local = timezone.localtime(at)
    day = local.replace(hour=0, minute=0, second=0, microsecond=0)
    week = day - timedelta(days=day.weekday())
    month = day.replace(day=1)
    stamp = connection.ops.adapt_datetimefield_value
    table = connection.ops.quote_name(Invoice._meta.db_table)
    statuses = ", ".join(["%s"] * len(CAP_STATUSES))
    return (
        "SELECT "  # noqa: S608 - table name and placeholders only
        "SUM(CASE WHEN submitted_at >= %s AND submitted_at < %s THEN 1 ELSE 0 END), "
        "SUM(CASE WHEN submitted_at >= %s AND submitted_at < %s THEN 1 ELSE 0 END), "
        "SUM(CASE WHEN submitted_at >= %s THEN 1 ELSE 0 END), "
        f"COUNT(*) FROM {table} "
        f"WHERE consumer_id = %s AND campaign_id = %s AND status IN ({statuses})",
        [
            stamp(day),
            stamp(day + timedelta(days=1)),
            stamp(week),
            stamp(week + timedelta(days=7)),
            stamp(month),
            consumer_id,
            campaign_id,
            *[str(s) for s in CAP_STATUSES],
        ],
    )


def _cap_failure(campaign, row) -> tuple[str, dict] | None:
    """Step 7 from `_cap_counts_query`'s row: the first cap reached, or None."""
    day, week, month, total = (int(n or 0) for n in row)
    for count, cap, code in (
        (day, campaign.cap_per_day, "limit.daily_reached"),
        (week, campaign.cap_per_week, "limit.weekly_reached"),
        (month, campaign.cap_per_month, "limit.monthly_reached"),
        (total, campaign.cap_per_campaign, "limit.campaign_reached"),
    ):
        if cap is not None and count >= cap:
            return code, {"limit": cap}
    return None


def _number_is_live_query(number: str) -> tuple[str, list]:
    """Whether a live submission holds this number (step 3's early answer; the partial unique
    index decides races). Plain SQL: one indexed probe on every submission."""
    table = connection.ops.quote_name(Invoice._meta.db_table)
    statuses = ", ".join(["%s"] * len(LIVE_INVOICE_STATUSES))
    return (
        f"SELECT 1 FROM {table} WHERE number = %s AND status IN ({statuses}) LIMIT 1",  # noqa: S608
        [number, *[str(s) for s in LIVE_INVOICE_STATUSES]],
    )


def _verify_unless_live(question: InvoiceQuestion) -> TaxCheck | None:
    """Steps 3–4: None if a live submission holds the number, else the tax authority's
    answer. A verifier that reads this database (the registry) reads in the same round trip
    as the duplicate check; any other is asked only for a number nobody holds (its calls
    cost a quota)."""
    verifier = get_tax_verifier()
    kwargs = {"number": question.number, "issue_date": question.issue_date}
    if not verifier.local:
        if fetch_one(*_number_is_live_query(question.number)) is not None:
            return None
        return verifier.verify(**kwargs, total=question.total)
    with read_ahead(*_number_is_live_query(question.number)) as live:
        check = verifier.verify(**kwargs, total=question.total)
        return None if live.row() is not None else check


def _consumer_lock(consumer_id: int, *, new_invoice: bool = False):
    """The consumer's row, locked for the transaction (`SELECT … FOR UPDATE`, plain SQL:
    `model_row_query`), queued to travel with the decision's other reads (`read_ahead`): the
    first statement of the decision's transaction, so its `BEGIN` goes in the same round trip.

    On PostgreSQL the same statement also sets `GENERIC_PLANS` for the rest of the transaction
    (`set_config(…, true)` is `SET LOCAL`; every later statement of this transaction is a
    look-up or write by key) and, for a new submission (`new_invoice`), draws the new
    invoice's id from its sequence, so that its INSERT can go with the transaction's batched
    writes: one statement instead of three (`_locked` reads the row, `_new_id` the id)."""
    if connection.vendor != "postgresql":
        return read_ahead(*model_row_query(Consumer, "id", consumer_id, for_update=True))
    extra, extra_params = ["set_config(%s, %s, true)"], list(GENERIC_PLANS_SETTING)
    if new_invoice:
        ids_sql, ids_params = next_ids_query(Invoice)
        extra.append(ids_sql.removeprefix("SELECT "))
        extra_params += ids_params
    return read_ahead(
        *model_row_query(
            Consumer, "id", consumer_id, for_update=True, extra=extra, extra_params=extra_params
        )
    )


_CONSUMER_COLUMNS = len(Consumer._meta.concrete_fields)


def _locked(lock) -> Consumer:
    consumer = model_from_row(Consumer, lock.row())
    if consumer is None:
        raise Consumer.DoesNotExist
    return consumer


def _new_id(lock) -> int | None:
    """The new invoice's id drawn by `_consumer_lock(…, new_invoice=True)` (None elsewhere than
    PostgreSQL: the INSERT then runs at once and gets its id back)."""
    row = lock.row()
    at = _CONSUMER_COLUMNS + 1  # after the consumer's columns and the setting's
    return row[at] if row is not None and len(row) > at else None


class _NumberTaken(Exception):
    """Another live submission of this number won the race (the partial unique index)."""


NUMBER_UNIQUE = "invoice_number_live_unique"


def _number_taken(exc: IntegrityError) -> bool:
    """The unique violation is the live number's (PostgreSQL names the constraint)."""
    diag = getattr(exc.__cause__, "diag", None)
    return getattr(diag, "constraint_name", None) == NUMBER_UNIQUE


def _decide(
    *,
    consumer: Consumer,
    question: InvoiceQuestion,
    record,
    channel: str,
    pending: Invoice | None = None,
    before_commit=None,
) -> tuple[Invoice, str, dict, dict | None]:
    """Steps 5–9 (`_decide_locked`); a lost race for the number is recorded as a duplicate."""
    try:
        return _decide_locked(
            consumer=consumer,
            question=question,
            record=record,
            channel=channel,
            pending=pending,
            before_commit=before_commit,
        )
    except (_NumberTaken, IntegrityError) as exc:
        if isinstance(exc, IntegrityError) and not _number_taken(exc):
            raise
        rejected = _record_rejection(
            consumer, question, channel, "invoice.duplicate", record=record
        )
        return rejected, "invoice.duplicate", {}, None


def _screen(consumer, record, campaign, merchant, invoice):
    """Steps 5–8 for `consumer`: (rejection code or "", detail, risk decision or None,
    buyer name matched). The caps' count and the risk facts are read together, with whatever
    reads are queued (the consumer's lock: `read_ahead`); the caps decide before the risk
    rules."""
    real_name = consumer.real_name
    matched = bool(real_name) and record.buyer_name_matches(real_name)
    if consumer.status != ConsumerStatus.ACTIVE:
        return "consumer.frozen", {}, None, matched
    if not matched:
        return "invoice.name_mismatch", {}, None, matched
    if campaign is None:
        return "invoice.no_campaign", {}, None, matched
    failure = eligibility_failure(
        rules=CampaignRules.cached(campaign), record=record, merchant=merchant
    )
    if failure is not None:
        return *failure, None, matched
    with read_ahead(*_cap_counts_query(consumer.pk, campaign.pk, invoice.submitted_at)) as caps:
        risk = risk_assess_submission(
            consumer=consumer,
            record=record,
            campaign=campaign,
            merchant=merchant,
            merchant_known=True,  # looked up from the cache: None means no such merchant
            device_hash=invoice.device_hash,
            exclude_invoice_id=invoice.pk,
        )
        failure = _cap_failure(campaign, caps.row())
    if failure is not None:
        return *failure, None, matched
    if risk.action == RiskAction.BLOCK:
        return "risk.blocked", {}, risk, matched
    return "", {}, risk, matched


def _decide_locked(
    *,
    consumer: Consumer,
    question: InvoiceQuestion,
    record,
    channel: str,
    pending: Invoice | None = None,
    before_commit=None,
) -> tuple[Invoice, str, dict, dict | None]:
    """Steps 5–9 for a verified invoice, in one transaction under the consumer's row lock.

    Returns (invoice, rejection code or "", detail, instant prize). A new submission is
    inserted with its final status; a pending one moves from `pending`. `before_commit(
    invoice, prize)` is called last inside the transaction when the invoice is entered or held
    (the API stores its reply there: `apps.common.idempotency.store_reply_in_transaction`).

    Round trips of a new submission: (1) `BEGIN`, the consumer's lock, the new invoice's id
    and — if the consumer as the request loaded it passes the checks that need no count — the
    caps' count and the risk facts, all read under the lock (the lock comes first in the
    round trip); a consumer changed meanwhile (frozen, renamed) is screened again from the
    locked row; (2) the writes nobody reads back (the invoice, its status history, the instant
    draw's record, the rollup queue, the idempotency reply) with the `COMMIT`
    (`batched_writes`). An instant win adds its own statements between the two. A lost race
    for the number fails the batch on the partial unique index, and the caller records the
    attempt anew. The rollups (`deferred_rollups`) are written last, just before the commit.
    """
    with transaction.atomic(), batched_writes(commit=True), deferred_rollups():
        campaign, merchant = campaign_and_merchant(question.issue_date, record.seller_uscc)
        with _consumer_lock(consumer.pk, new_invoice=pending is None) as lock:
            if pending is not None:
                consumer = _locked(lock)
                invoice = Invoice.objects.select_for_update().get(pk=pending.pk)
                if invoice.status != InvoiceStatus.PENDING:
                    return invoice, invoice.rejection_code, {}, None
            else:
                invoice = _new_invoice(consumer, question, channel)
            code, detail, risk, matched = _screen(consumer, record, campaign, merchant, invoice)
            if pending is None:
                locked = _locked(lock)
                if (locked.status, locked.real_name) != (consumer.status, consumer.real_name):
                    code, detail, risk, matched = _screen(
                        locked, record, campaign, merchant, invoice
                    )
                consumer = locked
                invoice.pk = _new_id(lock)
        _fill_from_record(invoice, record, consumer.real_name, matched)
        invoice.merchant = merchant
        now = timezone.now()
        invoice.decided_at = now
        previous = invoice.status if pending is not None else ""
        if code:
            target = InvoiceStatus.REJECTED
            invoice.rejection_code = code
        else:
            target = (
                InvoiceStatus.HELD if risk.action == RiskAction.HOLD else InvoiceStatus.ACCEPTED
            )
            invoice.campaign = campaign
            if target == InvoiceStatus.ACCEPTED:
                invoice.entered_at = now
        if pending is not None:
            check_transition(INVOICE_TRANSITIONS, previous, target, entity="invoice")
        invoice.status = target
        invoice.next_check_at = None
        if pending is not None:
            invoice.save()
        else:
            try:
                # No savepoint (two round trips on every submission): losing the race for the
                # number aborts this transaction, and the caller records the rejected attempt
                # in a new one. With its id drawn already (PostgreSQL), the INSERT goes with
                # the batch; without, it runs now, for the rows that refer to it.
                insert_objects([invoice], later=invoice.pk is not None)
            except IntegrityError as exc:
                raise _NumberTaken from exc
        steps = []
        if pending is None:
            steps.append(("", InvoiceStatus.PENDING, "invoice.received", ""))
            previous = InvoiceStatus.PENDING
        note = "; ".join(risk.reasons) if risk is not None else ""
        steps.append((previous, target, code or (risk.code if risk else ""), note))
        _history_steps(invoice, steps)
        if risk is not None:
            risk_assessment_save(invoice=invoice, decision=risk)
        prize = None
        if target == InvoiceStatus.ACCEPTED:
            prize = instant_draw_for_entry(
                invoice=invoice, consumer_locked=True, new_entry=pending is None
            )
        if before_commit is not None and not code:
            before_commit(invoice, prize)
        return invoice, code, detail, prize


def _check_consumer(consumer: Consumer) -> None:
    if consumer.status != ConsumerStatus.ACTIVE:
        raise InvoiceRejected("consumer.frozen")
    if consumer.verification_status != VerificationStatus.VERIFIED:
        raise InvoiceRejected("consumer.not_verified")


def _pending_deadline(invoice: Invoice):
    return invoice.submitted_at + timedelta(hours=settings.INVOICE_PENDING_MAX_HOURS)


def _next_check(attempts: int):
    """Exponential back-off: base, 2×base, 4×base … capped (the tax database lags ~1 hour)."""
    minutes = min(
        settings.INVOICE_RECHECK_BASE_MINUTES * 2**attempts, settings.INVOICE_RECHECK_MAX_MINUTES
    )
    return timezone.now() + timedelta(minutes=minutes)


def invoice_submit(
    *, consumer: Consumer, data: Mapping, channel: str = SourceChannel.APP, before_commit=None
) -> SubmissionResult:
    """Run the whole pipeline for one submission. Raises `InvoiceRejected` (after keeping the
    rejected attempt on record) or a 400 `DomainError` for malformed input. `before_commit(
    invoice, instant prize)`: called inside the decision's transaction when the invoice is
    entered or held (not for a pending or rejected one)."""
    _check_consumer(consumer)
    question = parse_submission(data)
    if data.get("device_id"):
        question = replace(question, device_hash=device_fingerprint(data.get("device_id")))
    check = _verify_unless_live(question)
    if check is None:
        rejected = _record_rejection(consumer, question, channel, "invoice.duplicate")
        raise InvoiceRejected("invoice.duplicate", detail={"invoice": str(rejected.uid)})
    if check.outcome == TaxOutcome.MISMATCH:
        rejected = _record_rejection(consumer, question, channel, "invoice.mismatch")
        raise InvoiceRejected(
            "invoice.mismatch",
            detail={"invoice": str(rejected.uid), "fields": list(check.mismatched_fields)},
        )
    if check.outcome != TaxOutcome.FOUND:
        return SubmissionResult(_create_pending(consumer, question, channel, check))
    invoice, code, detail, prize = _decide(
        consumer=consumer,
        question=question,
        record=check.record,
        channel=channel,
        before_commit=before_commit,
    )
    if code:
        raise InvoiceRejected(code, detail={**detail, "invoice": str(invoice.uid)})
    return SubmissionResult(invoice, prize)


def _create_pending(consumer, question, channel, check: TaxCheck) -> Invoice:
    """Not found yet, or the tax service is unreachable: hold the number and re-check later."""
    invoice = _new_invoice(consumer, question, channel)
    invoice.status = InvoiceStatus.PENDING
    invoice.next_check_at = _next_check(0)
    note = check.detail or check.outcome
    try:
        with transaction.atomic(), deferred_rollups():
            invoice.save(force_insert=True)
            _history(invoice, "", InvoiceStatus.PENDING, f"tax.{check.outcome}", note)
    except IntegrityError:
        rejected = _record_rejection(consumer, question, channel, "invoice.duplicate")
        raise InvoiceRejected("invoice.duplicate", detail={"invoice": str(rejected.uid)}) from None
    return invoice


def invoice_recheck(*, invoice_id: int) -> Invoice:
    """Re-verify a pending invoice; decide it, or schedule the next check with back-off.

    Past `INVOICE_PENDING_MAX_HOURS` an invoice the tax authority still does not know is
    rejected with `invoice.not_found`. Idempotent: a decided invoice is left alone.
    """
    invoice = Invoice.objects.select_related("consumer").get(pk=invoice_id)
    if invoice.status != InvoiceStatus.PENDING:
        return invoice
    question = InvoiceQuestion(invoice.number, invoice.issue_date, invoice.total)
    # Uncached: the back-off schedule itself keeps within the service's daily quota, and a
    # cached "not found" would hide the record the tax database has since caught up with.
    check = get_tax_verifier(cached=False).verify(
        number=question.number, issue_date=question.issue_date, total=question.total
    )
    if check.outcome == TaxOutcome.FOUND:
        decided, _code, _detail, _prize = _decide(
            consumer=invoice.consumer,
            question=question,
            record=check.record,
            channel=invoice.source_channel,
            pending=invoice,
        )
        return decided
    with transaction.atomic():
        invoice = Invoice.objects.select_for_update().get(pk=invoice_id)
        if invoice.status != InvoiceStatus.PENDING:
            return invoice
        invoice.verification_attempts += 1
        if check.outcome == TaxOutcome.MISMATCH or timezone.now() >= _pending_deadline(invoice):
            code = (
                "invoice.mismatch" if check.outcome == TaxOutcome.MISMATCH else "invoice.not_found"
            )
            invoice.status, invoice.rejection_code = InvoiceStatus.REJECTED, code
            invoice.decided_at, invoice.next_check_at = timezone.now(), None
            invoice.save()
            _history(invoice, InvoiceStatus.PENDING, InvoiceStatus.REJECTED, code)
        else:
            invoice.next_check_at = _next_check(invoice.verification_attempts)
            invoice.save(update_fields=["verification_attempts", "next_check_at", "updated_at"])
            _history(
                invoice,
                InvoiceStatus.PENDING,
                InvoiceStatus.PENDING,
                f"tax.{check.outcome}",
                check.detail,
            )
    return invoice


def invoice_review(*, invoice: Invoice, accept: bool, actor, reason: str) -> Invoice:
    """A reviewer releases a held invoice into the campaign or rejects it. Audited."""
    with transaction.atomic():
        invoice = Invoice.objects.select_for_update().get(pk=invoice.pk)
        target = InvoiceStatus.ACCEPTED if accept else InvoiceStatus.REJECTED
        check_transition(INVOICE_TRANSITIONS, invoice.status, target, entity="invoice")
        before = invoice.status
        invoice.status = target
        invoice.decided_at = timezone.now()
        if accept:
            invoice.entered_at = invoice.decided_at
        else:
            invoice.rejection_code = "review.rejected"
        invoice.save()
        _history(invoice, before, target, "" if accept else "review.rejected", reason, actor)
        audit_record(
            action="invoice.released" if accept else "invoice.review_rejected",
            category=AuditCategory.STATE,
            target=invoice,
            actor=actor,
            reason=reason,
            before={"status": before},
            after={"status": target},
        )
        notify_review_outcome(invoice_id=invoice.pk, accepted=accept)
    if accept:
        instant_draw_for_entry(invoice=invoice)
    return invoice
