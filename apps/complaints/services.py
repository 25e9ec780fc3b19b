"""Every write of the complaints app: opening cases, assignment, the workflow, messages,
attachments, ratings, the SLA sweep and configuration imports.

Invariants kept here (and backed by the database):
- every status change follows `CASE_TRANSITIONS`, under a row lock of the case, with a history
  row and an audit record in the same transaction;
- round-robin dealing locks the queue row first, so two cases opened at the same moment read
  the pointer one after the other and never go to the same stale "next" handler;
- only a handler of the case's queue (or its assignee) works on a case; only a supervisor of
  the queue reassigns it to someone else; a consumer acts only on their own cases and never
  sees internal notes;
- SLA warnings and escalations happen once per clock (conditional updates), however often the
  sweep runs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from apps.audit.models import AuditCategory
from apps.audit.services import audit_record
from apps.common.states import check_transition

from . import notify
from .calendar import WorkCalendar, load_calendar
from .choices import (
    CASE_TRANSITIONS,
    CLOCK_RUNNING_STATUSES,
    DONE_STATUSES,
    OPEN_STATUSES,
    CaseChannel,
    CaseEvent,
    CaseKind,
    CaseOutcome,
    CasePriority,
    CaseStatus,
    MessageKind,
)
from .exceptions import CaseError
from .files import ALLOWED_TYPES, read_checked, safe_file_name
from .models import (
    Case,
    CaseAttachment,
    CaseCategory,
    CaseMessage,
    CaseQueue,
    CaseQueueMembership,
    CaseSequence,
    CaseSettings,
    CaseStatusChange,
    FaqArticle,
)
from .selectors import PERM_SUPERVISE, is_handler_of, is_supervisor_of

logger = logging.getLogger(__name__)

MAX_BODY = 10_000


def _user(actor):
    return actor if actor is not None and getattr(actor, "is_authenticated", False) else None


def _forbid(**detail):
    raise CaseError("case.not_permitted", detail=detail, status_code=403)


def _require_handler(actor, case: Case) -> None:
    if not is_handler_of(actor, case):
        _forbid(reference=case.reference)


def _require_supervisor(actor, case: Case) -> None:
    if not is_supervisor_of(actor, case.queue_id):
        _forbid(reference=case.reference, permission=PERM_SUPERVISE)


def _lock(case: Case) -> Case:
    return Case.objects.select_for_update().get(pk=case.pk)


def _history(case: Case, event: str, before: str, *, reason: str = "", actor=None) -> None:
    CaseStatusChange.objects.create(
        case=case,
        event=event,
        from_status=before,
        to_status=case.status,
        assignee_id=case.assignee_id,
        reason=str(reason)[:300],
        actor=_user(actor),
    )


def _audit(action: str, case: Case, *, actor=None, before=None, after=None, reason=""):
    audit_record(
        action=action,
        target=case,
        actor=_user(actor),
        before=before,
        after=after,
        reason=str(reason),
    )


def _move(case: Case, target: str, *, event: str, actor=None, reason="", fields=()) -> str:
    """Move a locked case to `target` (checked against the table) with a history row; saves
    the status and `fields`. Returns the previous status."""
    before = case.status
    check_transition(CASE_TRANSITIONS, before, target, entity="case")
    case.status = target
    case.save(update_fields=["status", "updated_at", *fields])
    _history(case, event, before, reason=reason, actor=actor)
    return before


def _clean_text(value: str, *, code: str, required: bool = True, limit: int = MAX_BODY) -> str:
    text = (value or "").strip()
    if required and not text:
        raise CaseError(code)
    return text[:limit]


# --- Clocks ------------------------------------------------------------------------------------


def _due_times(category: CaseCategory, opened_at: datetime, cal: WorkCalendar):
    return (
        cal.add_hours(opened_at, float(category.first_response_hours)),
        cal.add_days(opened_at, float(category.resolution_days)),
    )


def _resume_clock(case: Case, now: datetime, cal: WorkCalendar | None = None) -> list[str]:
    """The consumer answered (or the handler took the case back): the resolution clock runs
    again with the working time it had left when it stopped. Returns the fields changed."""
    if case.paused_at is None:
        return []
    cal = cal or load_calendar(around=now)
    changed = ["paused_at"]
    if case.resolution_due > case.paused_at and case.resolution_breached_at is None:
        left = cal.between(case.paused_at, case.resolution_due)
        new_due = cal.add(now, left)
        if new_due != case.resolution_due:
            case.resolution_due = new_due
            case.resolution_warned_at = None
            changed += ["resolution_due", "resolution_warned_at"]
    case.paused_at = None
    return changed


# --- Opening -----------------------------------------------------------------------------------


def _next_reference(opened_at: datetime, prefix: str) -> str:
    year = timezone.localtime(opened_at).year
    CaseSequence.objects.bulk_create([CaseSequence(year=year)], ignore_conflicts=True)
    # The UPDATE locks the year's row until commit: numbers are gapless and never repeat.
    CaseSequence.objects.filter(year=year).update(last_value=F("last_value") + 1)
    number = CaseSequence.objects.get(year=year).last_value
    return f"{prefix}{year}-{number:06d}"


def _category_for(kind: str, category: CaseCategory | None) -> CaseCategory:
    if kind not in CaseKind.values:
        raise CaseError("case.kind_invalid", detail={"field": "kind"})
    if category is not None:
        if not category.active or category.kind != kind:
            raise CaseError("case.category_invalid", detail={"field": "category"})
        return category
    found = (
        CaseCategory.objects.filter(kind=kind, active=True)
        .select_related("queue")
        .order_by("sort_order", "id")
        .first()
    )
    if found is None:
        raise CaseError("case.category_invalid", detail={"field": "category"})
    return found


def normalize_caller_phone(value: str) -> str:
    """A mainland mobile, a landline with its area code, or a local number (7–8 digits)."""
    import re

    from apps.accounts.phone import normalize_phone

    phone = normalize_phone(value or "")
    if not re.fullmatch(r"1[3-9]\d{9}|0\d{9,11}|\d{7,8}", phone):
        raise CaseError("case.phone_invalid", detail={"field": "caller_phone"})
    return phone


def _check_consumer_links(consumer, *, invoice, award, payout) -> None:
    """A consumer links only their own invoices, prizes and payouts."""
    if invoice is not None and invoice.consumer_id != consumer.pk:
        raise CaseError("case.link_not_yours", detail={"field": "invoice"}, status_code=404)
    if award is not None and award.consumer_id != consumer.pk:
        raise CaseError("case.link_not_yours", detail={"field": "award"}, status_code=404)
    if payout is not None and payout.award.consumer_id != consumer.pk:
        raise CaseError("case.link_not_yours", detail={"field": "payout"}, status_code=404)


def case_open(
    *,
    kind: str,
    subject: str,
    description: str = "",
    channel: str,
    category: CaseCategory | None = None,
    consumer=None,
    actor=None,
    caller_name: str = "",
    caller_phone: str = "",
    hotline_ticket: str | None = None,
    opened_at: datetime | None = None,
    priority: int | None = None,
    invoice=None,
    award=None,
    payout=None,
    merchant=None,
    reported_merchant_name: str = "",
    draw=None,
    auto_assign: bool = True,
) -> Case:
    """Open a case from the app (`consumer`), the hotline or staff entry (`actor`).

    Its clocks start at `opened_at` (a hotline ticket's reception time; never in the future),
    it lands in its category's queue and, if the queue deals automatically, goes round-robin to
    an available handler in the same transaction.
    """
    if channel not in CaseChannel.values:
        raise CaseError("case.kind_invalid", detail={"field": "channel"})
    if channel == CaseChannel.API:
        if consumer is None:
            _forbid(channel=channel)
        _check_consumer_links(consumer, invoice=invoice, award=award, payout=payout)
    elif _user(actor) is None or not (actor.is_superuser or actor.has_perm("complaints.add_case")):
        _forbid(permission="complaints.add_case")
    category = _category_for(kind, category)
    subject = _clean_text(subject, code="case.subject_required", limit=200)
    description = _clean_text(description, code="case.subject_required", required=False)
    ticket = (hotline_ticket or "").strip() or None
    if channel == CaseChannel.HOTLINE and consumer is None and not (caller_phone or "").strip():
        raise CaseError("case.contact_required", detail={"field": "caller_phone"})
    if caller_phone:
        caller_phone = normalize_caller_phone(caller_phone)
    now = timezone.now()
    opened_at = min(opened_at or now, now)
    if priority is None:
        priority = category.default_priority
    elif priority not in CasePriority.values:
        raise CaseError("case.kind_invalid", detail={"field": "priority"})
    config = CaseSettings.load()
    cal = load_calendar(around=opened_at, config=config)
    first_due, resolution_due = _due_times(category, opened_at, cal)
    try:
        with transaction.atomic():
            if ticket and Case.objects.filter(hotline_ticket=ticket).exists():
                raise CaseError(
                    "case.hotline_ticket_taken",
                    detail={"field": "hotline_ticket", "ticket": ticket},
                    status_code=409,
                )
            case = Case.objects.create(
                reference=_next_reference(opened_at, config.reference_prefix),
                kind=kind,
                channel=channel,
                priority=priority,
                category=category,
                queue_id=category.queue_id,
                subject=subject,
                description=description,
                consumer=consumer,
                caller_name=(caller_name or "").strip()[:100],
                caller_phone=caller_phone,
                hotline_ticket=ticket,
                created_by=_user(actor),
                invoice=invoice,
                award=award,
                payout=payout,
                merchant=merchant,
                reported_merchant_name=(reported_merchant_name or "").strip()[:200],
                draw=draw,
                opened_at=opened_at,
                first_response_due=first_due,
                resolution_due=resolution_due,
            )
            _history(case, CaseEvent.OPENED, "", actor=actor, reason=channel)
            _audit(
                "case.opened",
                case,
                actor=actor,
                after={
                    "kind": kind,
                    "channel": channel,
                    "category": category.code,
                    "queue": category.queue_id,
                    "hotline_ticket": ticket or "",
                },
            )
            if auto_assign:
                _deal(case, actor=None, now=now)
    except IntegrityError as exc:
        if ticket and Case.objects.filter(hotline_ticket=ticket).exists():
            raise CaseError(
                "case.hotline_ticket_taken",
                detail={"field": "hotline_ticket", "ticket": ticket},
                status_code=409,
            ) from exc
        raise
    return case


# --- Assignment --------------------------------------------------------------------------------


def _pick(queue_id: int, *, now: datetime, required: bool = False):
    """The next available member of a queue (round-robin), advancing the queue's pointer.

    Locks the queue row first: every dealer of this queue waits here, then reads the members'
    pointers as committed by the previous one. None when nobody is available (or the queue
    does not deal automatically and `required` is false).
    """
    queue = CaseQueue.objects.select_for_update().get(pk=queue_id)
    if not queue.active or not (queue.auto_assign or required):
        return None
    member = (
        CaseQueueMembership.objects.filter(queue=queue, available=True, user__is_active=True)
        .order_by("deal_seq", "id")
        .select_related("user")
        .first()
    )
    if member is None:
        if required:
            raise CaseError("case.no_available_handler", status_code=409)
        return None
    queue.deal_counter += 1
    queue.save(update_fields=["deal_counter"])
    CaseQueueMembership.objects.filter(pk=member.pk).update(
        deal_seq=queue.deal_counter, last_assigned_at=now
    )
    return member.user


def _deal(case: Case, *, actor, now: datetime) -> bool:
    """Give a locked (or just created) NEW case to the next available member of its queue."""
    user = _pick(case.queue_id, now=now)
    if user is None:
        return False
    case.assignee = user
    _move(
        case,
        CaseStatus.ASSIGNED,
        event=CaseEvent.ASSIGNED,
        actor=actor,
        reason="round-robin",
        fields=["assignee"],
    )
    _audit("case.assigned", case, actor=actor, after={"assignee": user.pk, "how": "auto"})
    return True


def _is_member(user, queue_id: int) -> bool:
    return CaseQueueMembership.objects.filter(
        queue_id=queue_id, user=user, user__is_active=True
    ).exists()


def case_assign(*, case: Case, actor=None, assignee=None, reason: str = "") -> Case:
    """Assign a case: round-robin when `assignee` is None (a supervisor's "deal it", or the
    system), otherwise to that member of the queue (a supervisor's manual reassignment)."""
    with transaction.atomic():
        case = _lock(case)
        if not case.is_open:
            raise CaseError("case.not_open", status_code=409)
        if _user(actor) is not None:
            _require_supervisor(actor, case)
        now = timezone.now()
        if assignee is None:
            assignee = _pick(case.queue_id, now=now, required=True)
            if assignee.pk == case.assignee_id:
                return case
            _reassign(case, assignee, actor=actor, reason=reason or "round-robin", now=now)
            return case
        if not _is_member(assignee, case.queue_id):
            raise CaseError("case.assignee_not_member", detail={"field": "assignee"})
        if assignee.pk == case.assignee_id:
            return case
        _reassign(case, assignee, actor=actor, reason=reason, now=now)
    return case


def _reassign(case: Case, assignee, *, actor, reason: str, now: datetime) -> None:
    previous = case.assignee_id
    case.assignee = assignee
    fields = ["assignee"]
    event = CaseEvent.REASSIGNED if previous else CaseEvent.ASSIGNED
    if case.status == CaseStatus.AWAITING_CONSUMER:
        # Still waiting for the consumer: only the handler changes.
        case.save(update_fields=["assignee", "updated_at"])
        _history(case, event, case.status, reason=reason, actor=actor)
    else:
        _move(case, CaseStatus.ASSIGNED, event=event, actor=actor, reason=reason, fields=fields)
    _audit(
        "case.assigned",
        case,
        actor=actor,
        before={"assignee": previous},
        after={"assignee": assignee.pk, "how": "manual"},
        reason=reason,
    )


def case_take(*, case: Case, actor) -> Case:
    """A handler of the queue takes the case and starts work on it. Taking a case assigned to
    someone else is a supervisor's reassignment."""
    with transaction.atomic():
        case = _lock(case)
        _require_handler(actor, case)
        if case.status not in (CaseStatus.NEW, CaseStatus.ASSIGNED, CaseStatus.AWAITING_CONSUMER):
            if case.status == CaseStatus.IN_PROGRESS and case.assignee_id == actor.pk:
                return case
            raise CaseError("case.not_open", status_code=409)
        if case.assignee_id not in (None, actor.pk):
            _require_supervisor(actor, case)
        if not actor.is_superuser and not _is_member(actor, case.queue_id):
            _forbid(reference=case.reference)
        previous = case.assignee_id
        now = timezone.now()
        case.assignee = actor
        fields = ["assignee", *_resume_clock(case, now)]
        _move(case, CaseStatus.IN_PROGRESS, event=CaseEvent.TAKEN, actor=actor, fields=fields)
        _audit(
            "case.taken",
            case,
            actor=actor,
            before={"assignee": previous},
            after={"assignee": actor.pk},
        )
    return case


def membership_set_available(*, membership: CaseQueueMembership, available: bool, actor):
    """A handler marks themselves (or a supervisor marks a member) available or away."""
    if _user(actor) is None or (
        membership.user_id != actor.pk and not is_supervisor_of(actor, membership.queue_id)
    ):
        _forbid(membership=membership.pk)
    with transaction.atomic():
        locked = CaseQueueMembership.objects.select_for_update().get(pk=membership.pk)
        if locked.available == available:
            return locked
        locked.available = available
        locked.save(update_fields=["available"])
        audit_record(
            action="case_queue.availability",
            category=AuditCategory.CONFIG,
            target=locked,
            actor=actor,
            after={"available": available, "user": locked.user_id},
        )
    return locked


# --- Messages ----------------------------------------------------------------------------------


def _published_article(article: FaqArticle | None) -> FaqArticle | None:
    if article is not None and not article.is_published:
        raise CaseError("case.article_not_published", detail={"field": "article"})
    return article


def case_reply(
    *,
    case: Case,
    actor,
    body: str = "",
    article: FaqArticle | None = None,
    await_consumer: bool = False,
) -> CaseMessage:
    """Reply to the consumer (visible in the app). The first reply stamps the first response;
    a reply moves a new or assigned case into progress (with the replier as handler if it had
    none), or — with `await_consumer` — stops the clock until the consumer answers."""
    article = _published_article(article)
    body = _clean_text(body, code="case.empty_message", required=article is None)
    if not body and article is not None:
        body = article.title
    with transaction.atomic():
        case = _lock(case)
        _require_handler(actor, case)
        if not case.is_open:
            raise CaseError("case.closed_for_messages", status_code=409)
        now = timezone.now()
        message = CaseMessage.objects.create(
            case=case, kind=MessageKind.PUBLIC_REPLY, body=body, author=actor, article=article
        )
        fields = []
        if case.first_responded_at is None:
            case.first_responded_at = now
            fields.append("first_responded_at")
        if case.assignee_id is None:
            case.assignee = actor
            fields.append("assignee")
        target = CaseStatus.AWAITING_CONSUMER if await_consumer else CaseStatus.IN_PROGRESS
        if target == CaseStatus.AWAITING_CONSUMER and case.status != target:
            case.paused_at = now
            fields.append("paused_at")
        elif target == CaseStatus.IN_PROGRESS:
            fields += _resume_clock(case, now)
        if case.status != target:
            event = CaseEvent.AWAITING if await_consumer else CaseEvent.STARTED
            _move(case, target, event=event, actor=actor, fields=fields)
        elif fields:
            case.save(update_fields=["updated_at", *fields])
        _audit(
            "case.replied",
            case,
            actor=actor,
            after={"message": message.pk, "article": article.pk if article else None},
        )
    return message


def case_note(*, case: Case, actor, body: str) -> CaseMessage:
    """An internal note: for staff only, never shown to the consumer; any status."""
    body = _clean_text(body, code="case.empty_message")
    with transaction.atomic():
        case = _lock(case)
        _require_handler(actor, case)
        message = CaseMessage.objects.create(
            case=case, kind=MessageKind.INTERNAL_NOTE, body=body, author=actor
        )
        case.save(update_fields=["updated_at"])
        _audit("case.noted", case, actor=actor, after={"message": message.pk})
    return message


def case_await_consumer(*, case: Case, actor, reason: str = "") -> Case:
    """Stop the resolution clock until the consumer answers (ask them with a reply)."""
    with transaction.atomic():
        case = _lock(case)
        _require_handler(actor, case)
        if case.status == CaseStatus.AWAITING_CONSUMER:
            return case
        case.paused_at = timezone.now()
        if case.assignee_id is None:
            case.assignee = actor
        _move(
            case,
            CaseStatus.AWAITING_CONSUMER,
            event=CaseEvent.AWAITING,
            actor=actor,
            reason=reason,
            fields=["paused_at", "assignee"],
        )
        _audit("case.awaiting_consumer", case, actor=actor, reason=reason)
    return case


def case_consumer_message(*, case: Case, consumer, body: str) -> CaseMessage:
    """The consumer writes on their open case. A case waiting for them goes back to work and
    its clock runs again."""
    body = _clean_text(body, code="case.empty_message")
    with transaction.atomic():
        case = _lock(case)
        if consumer is None or case.consumer_id != consumer.pk:
            raise CaseError("case.not_found", status_code=404)
        if not case.is_open:
            raise CaseError("case.closed_for_messages", status_code=409)
        message = CaseMessage.objects.create(
            case=case, kind=MessageKind.CONSUMER_MESSAGE, body=body, author=consumer.user
        )
        if case.status == CaseStatus.AWAITING_CONSUMER:
            fields = _resume_clock(case, timezone.now())
            target = CaseStatus.IN_PROGRESS if case.assignee_id else CaseStatus.NEW
            _move(
                case, target, event=CaseEvent.CONSUMER_REPLIED, actor=consumer.user, fields=fields
            )
        else:
            case.save(update_fields=["updated_at"])
        _audit("case.consumer_message", case, actor=consumer.user, after={"message": message.pk})
    return message


# --- Links -------------------------------------------------------------------------------------


def case_link(*, case: Case, actor, **links) -> Case:
    """Staff link the records a case is about (invoice, award, payout, merchant, draw).
    A value of None leaves that link as it is."""
    allowed = {"invoice", "award", "payout", "merchant", "draw"}
    unknown = set(links) - allowed
    if unknown:
        raise ValueError(f"unknown links {sorted(unknown)}")
    with transaction.atomic():
        case = _lock(case)
        _require_handler(actor, case)
        changed = {}
        for name, value in links.items():
            if value is not None and getattr(case, f"{name}_id") != value.pk:
                setattr(case, name, value)
                changed[name] = value.pk
        if not changed:
            return case
        case.save(update_fields=["updated_at", *changed])
        _history(
            case, CaseEvent.LINKED, case.status, actor=actor, reason=", ".join(sorted(changed))
        )
        _audit("case.linked", case, actor=actor, after=changed)
    return case


# --- Resolution, closing, reopening ------------------------------------------------------------


SUBSTANTIATION = {CaseOutcome.SUBSTANTIATED: True, CaseOutcome.NOT_SUBSTANTIATED: False}


def case_resolve(*, case: Case, actor, outcome: str, summary: str = "") -> Case:
    """Resolve a case with its outcome; the summary is shown to the consumer. A merchant's
    refusal resolved as substantiated is recorded for the risk model (`substantiated`) and
    needs the merchant linked."""
    if outcome not in CaseOutcome.values:
        raise CaseError("case.outcome_invalid", detail={"field": "outcome"})
    summary = _clean_text(summary, code="case.empty_message", required=False)
    with transaction.atomic():
        case = _lock(case)
        _require_handler(actor, case)
        if not case.is_open:
            raise CaseError("case.not_open", status_code=409)
        if (
            case.kind == CaseKind.MERCHANT_REFUSAL
            and outcome == CaseOutcome.SUBSTANTIATED
            and case.merchant_id is None
        ):
            raise CaseError(
                "case.link_not_found",
                "Link the merchant before resolving a refusal as substantiated.",
                detail={"field": "merchant"},
            )
        now = timezone.now()
        case.outcome = outcome
        case.resolution_summary = summary
        case.substantiated = SUBSTANTIATION.get(outcome)
        case.resolved_at = now
        case.paused_at = None
        if case.assignee_id is None:
            case.assignee = actor
        fields = [
            "outcome",
            "resolution_summary",
            "substantiated",
            "resolved_at",
            "paused_at",
            "assignee",
        ]
        if case.first_responded_at is None and summary:
            case.first_responded_at = now
            fields.append("first_responded_at")
        _move(
            case,
            CaseStatus.RESOLVED,
            event=CaseEvent.RESOLVED,
            actor=actor,
            reason=outcome,
            fields=fields,
        )
        _audit(
            "case.resolved",
            case,
            actor=actor,
            after={
                "outcome": outcome,
                "substantiated": case.substantiated,
                "merchant": case.merchant_id,
            },
        )
    return case


def case_close(*, case: Case, actor=None, reason: str = "") -> Case:
    """Close a resolved case (staff, or the sweep once the reopen window has passed)."""
    with transaction.atomic():
        case = _lock(case)
        if _user(actor) is not None:
            _require_handler(actor, case)
        if case.status == CaseStatus.CLOSED:
            return case
        if case.status != CaseStatus.RESOLVED:
            raise CaseError("case.not_resolved", status_code=409)
        case.closed_at = timezone.now()
        _move(
            case,
            CaseStatus.CLOSED,
            event=CaseEvent.CLOSED,
            actor=actor,
            reason=reason,
            fields=["closed_at"],
        )
        _audit("case.closed", case, actor=actor, reason=reason)
    return case


def reopen_deadline(case: Case, config: CaseSettings | None = None) -> datetime | None:
    if case.resolved_at is None:
        return None
    config = config or CaseSettings.load()
    return case.resolved_at + timedelta(days=config.reopen_window_days)


def case_reopen(*, case: Case, actor=None, consumer=None, reason: str = "") -> Case:
    """Reopen a resolved or closed case within the reopen window — by its consumer or a
    handler. It goes back to its handler (if still in the queue) or to the queue, with a new
    resolution clock; the earlier outcome and rating no longer count."""
    with transaction.atomic():
        case = _lock(case)
        if consumer is not None:
            if case.consumer_id != consumer.pk:
                raise CaseError("case.not_found", status_code=404)
            who = consumer.user
        else:
            _require_handler(actor, case)
            who = actor
        if case.status not in DONE_STATUSES:
            raise CaseError("case.not_resolved", status_code=409)
        now = timezone.now()
        deadline = reopen_deadline(case)
        if deadline is None or now > deadline:
            raise CaseError("case.reopen_window_passed", status_code=409)
        cal = load_calendar(around=now)
        keep = case.assignee_id is not None and _is_member(case.assignee, case.queue_id)
        before = {
            "outcome": case.outcome,
            "substantiated": case.substantiated,
            "rating": case.rating,
        }
        case.assignee = case.assignee if keep else None
        case.outcome, case.substantiated = "", None
        case.resolved_at = case.closed_at = None
        case.rating, case.rating_comment, case.rated_at = None, "", None
        case.reopened_count += 1
        case.resolution_due = cal.add_days(now, float(case.category.resolution_days))
        case.resolution_warned_at = case.resolution_breached_at = None
        fields = [
            "assignee",
            "outcome",
            "substantiated",
            "resolved_at",
            "closed_at",
            "rating",
            "rating_comment",
            "rated_at",
            "reopened_count",
            "resolution_due",
            "resolution_warned_at",
            "resolution_breached_at",
        ]
        target = CaseStatus.ASSIGNED if keep else CaseStatus.NEW
        _move(case, target, event=CaseEvent.REOPENED, actor=who, reason=reason, fields=fields)
        _audit("case.reopened", case, actor=who, before=before, reason=reason)
        if not keep:
            _deal(case, actor=None, now=now)
    return case


def case_rate(*, case: Case, consumer, score: int, comment: str = "") -> Case:
    """The consumer rates a resolved (or closed) case once, 1 to 5."""
    if not isinstance(score, int) or isinstance(score, bool) or not 1 <= score <= 5:
        raise CaseError("case.rating_invalid", detail={"field": "score"})
    with transaction.atomic():
        case = _lock(case)
        if consumer is None or case.consumer_id != consumer.pk:
            raise CaseError("case.not_found", status_code=404)
        if case.status not in DONE_STATUSES:
            raise CaseError("case.not_resolved", status_code=409)
        if case.rating is not None:
            raise CaseError("case.already_rated", status_code=409)
        case.rating = score
        case.rating_comment = (comment or "").strip()[:500]
        case.rated_at = timezone.now()
        case.save(update_fields=["rating", "rating_comment", "rated_at", "updated_at"])
        _history(case, CaseEvent.RATED, case.status, actor=consumer.user, reason=str(score))
        _audit("case.rated", case, actor=consumer.user, after={"rating": score})
    return case


# --- Escalation and the SLA sweep --------------------------------------------------------------


def _supervisor_emails(case: Case) -> list[str]:
    from apps.accounts.models import User

    emails = list(
        CaseQueueMembership.objects.filter(
            queue_id=case.queue_id, is_supervisor=True, user__is_active=True
        ).values_list("user__email", flat=True)
    )
    if not any(emails):
        # No supervisor in the queue: everyone who holds the supervise permission.
        from django.db.models import Q

        app_label, codename = PERM_SUPERVISE.split(".")
        grant = {
            "permissions__content_type__app_label": app_label,
            "permissions__codename": codename,
        }
        emails = list(
            User.objects.filter(is_active=True)
            .filter(
                Q(**{f"groups__{k}": v for k, v in grant.items()})
                | Q(**{f"user_{k}": v for k, v in grant.items()})
            )
            .distinct()
            .values_list("email", flat=True)
        )
    return emails


def _escalate_locked(case: Case, *, actor, reason: str) -> bool:
    if case.escalated:
        return False
    case.escalated = True
    case.escalated_at = timezone.now()
    case.escalation_reason = str(reason)[:300]
    case.priority = max(case.priority, CasePriority.HIGH)
    case.save(
        update_fields=["escalated", "escalated_at", "escalation_reason", "priority", "updated_at"]
    )
    _history(case, CaseEvent.ESCALATED, case.status, actor=actor, reason=reason)
    _audit("case.escalated", case, actor=actor, reason=str(reason))
    notify.notify_escalation(case, reason=str(reason), recipients=_supervisor_emails(case))
    return True


def case_escalate(*, case: Case, actor, reason: str) -> Case:
    """A handler escalates a case to the queue's supervisors (once: a second escalation of an
    escalated case changes nothing)."""
    reason = _clean_text(reason, code="case.empty_message", limit=300)
    with transaction.atomic():
        case = _lock(case)
        _require_handler(actor, case)
        if not case.is_open:
            raise CaseError("case.not_open", status_code=409)
        _escalate_locked(case, actor=actor, reason=reason)
    return case


def _handler_emails(case: Case) -> list[str]:
    if case.assignee_id:
        return [case.assignee.email]
    return list(
        CaseQueueMembership.objects.filter(
            queue_id=case.queue_id, user__is_active=True
        ).values_list("user__email", flat=True)
    )


@dataclass
class SlaSweep:
    first_response_warned: int = 0
    resolution_warned: int = 0
    first_response_breached: int = 0
    resolution_breached: int = 0
    escalated: int = 0
    closed: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


def _warning_horizon(now: datetime, cal: WorkCalendar, config: CaseSettings) -> datetime:
    return cal.add_hours(now, float(config.warning_hours or Decimal(0)))


def _sweep_one(case_id: int, clock: str, stage: str, now: datetime) -> bool:
    """Warn about or escalate one clock of one case, once (the flag is set under the case's
    lock and checked again there)."""
    flag = f"{clock}_{'warned' if stage == 'warn' else 'breached'}_at"
    with transaction.atomic():
        case = (
            Case.objects.select_for_update(of=("self",)).select_related("assignee").get(pk=case_id)
        )
        if getattr(case, flag) is not None or not case.is_open:
            return False
        if clock == "first_response" and case.first_responded_at is not None:
            return False
        if clock == "resolution" and case.status not in CLOCK_RUNNING_STATUSES:
            return False
        due = getattr(case, f"{clock}_due")
        if stage == "breach" and due > now:
            return False
        setattr(case, flag, now)
        case.save(update_fields=[flag, "updated_at"])
        label = "first response" if clock == "first_response" else "resolution"
        if stage == "warn":
            _history(case, CaseEvent.SLA_WARNING, case.status, reason=f"{label} due soon")
            notify.notify_sla_warning(case, clock=clock, recipients=_handler_emails(case))
        else:
            _history(case, CaseEvent.SLA_BREACHED, case.status, reason=f"{label} overdue")
            _escalate_locked(case, actor=None, reason=f"sla.{clock}_breached")
    return True


def cases_check_sla(*, now: datetime | None = None, limit: int = 5000) -> dict[str, int]:
    """The scheduled SLA sweep: warn before a clock runs out, escalate to the supervisors when
    it has, and close resolved cases whose reopen window has passed. Idempotent."""
    now = now or timezone.now()
    config = CaseSettings.load()
    cal = load_calendar(around=now, config=config)
    horizon = _warning_horizon(now, cal, config)
    result = SlaSweep()
    open_ = sorted(OPEN_STATUSES)
    running = sorted(CLOCK_RUNNING_STATUSES)
    first = Case.objects.filter(status__in=open_, first_responded_at__isnull=True)
    resolution = Case.objects.filter(status__in=running)
    plans = (
        (
            first.filter(first_response_breached_at__isnull=True, first_response_due__lte=now),
            "first_response",
            "breach",
            "first_response_breached",
        ),
        (
            resolution.filter(resolution_breached_at__isnull=True, resolution_due__lte=now),
            "resolution",
            "breach",
            "resolution_breached",
        ),
        (
            first.filter(
                first_response_warned_at__isnull=True,
                first_response_due__lte=horizon,
                first_response_due__gt=now,
            ),
            "first_response",
            "warn",
            "first_response_warned",
        ),
        (
            resolution.filter(
                resolution_warned_at__isnull=True,
                resolution_due__lte=horizon,
                resolution_due__gt=now,
            ),
            "resolution",
            "warn",
            "resolution_warned",
        ),
    )
    for queryset, clock, stage, counter in plans:
        ids = list(queryset.order_by(f"{clock}_due").values_list("pk", flat=True)[:limit])
        for case_id in ids:
            if _sweep_one(case_id, clock, stage, now):
                setattr(result, counter, getattr(result, counter) + 1)
    result.escalated = result.first_response_breached + result.resolution_breached
    cutoff = now - timedelta(days=config.reopen_window_days)
    to_close = list(
        Case.objects.filter(status=CaseStatus.RESOLVED, resolved_at__lt=cutoff)
        .order_by("resolved_at")
        .values_list("pk", flat=True)[:limit]
    )
    for case_id in to_close:
        case = Case(pk=case_id)
        try:
            case_close(case=case, actor=None, reason="reopen window passed")
        except CaseError:
            continue
        result.closed += 1
    counts = result.as_dict()
    if any(counts.values()):
        audit_record(action="cases.sla_checked", category=AuditCategory.STATE, after=counts)
    return counts


# --- Attachments -------------------------------------------------------------------------------


def attachment_check(upload, *, config: CaseSettings | None = None) -> tuple[str, int, str]:
    """Refuse a file that is empty, too large or not JPEG/PNG/PDF by its bytes; returns
    (content type, size, sha256). Call it before a reply that carries the file."""
    config = config or CaseSettings.load()
    content_type, size, digest = read_checked(upload, max_bytes=config.attachment_max_bytes)
    if size == 0:
        raise CaseError("attachment.empty", detail={"field": "file"})
    if size > config.attachment_max_bytes:
        raise CaseError(
            "attachment.too_large",
            detail={"field": "file", "max_bytes": config.attachment_max_bytes},
            status_code=413,
        )
    if content_type not in ALLOWED_TYPES:
        raise CaseError(
            "attachment.type_not_allowed",
            detail={"field": "file", "allowed": sorted(ALLOWED_TYPES)},
            status_code=415,
        )
    return content_type, size, digest


def attachment_add(
    *,
    case: Case,
    upload,
    actor=None,
    consumer=None,
    message: CaseMessage | None = None,
    is_public: bool = True,
) -> CaseAttachment:
    """Attach a file: JPEG, PNG or PDF by its bytes (whatever its name says), within the size
    and count limits, stored under a random name in private storage.

    The consumer attaches to their own open case (always public); staff to a case they handle
    (public, or internal when it belongs to a note)."""
    config = CaseSettings.load()
    content_type, size, digest = attachment_check(upload, config=config)
    name = safe_file_name(getattr(upload, "name", "") or "file")
    with transaction.atomic():
        case = _lock(case)
        if consumer is not None:
            if case.consumer_id != consumer.pk:
                raise CaseError("case.not_found", status_code=404)
            if not case.is_open:
                raise CaseError("case.closed_for_messages", status_code=409)
            who, is_public = consumer.user, True
        else:
            _require_handler(actor, case)
            who = actor
        if message is not None and message.kind == MessageKind.INTERNAL_NOTE:
            is_public = False
        if CaseAttachment.objects.filter(case=case).count() >= config.attachments_per_case:
            raise CaseError(
                "attachment.too_many",
                detail={"max": config.attachments_per_case},
                status_code=409,
            )
        attachment = CaseAttachment(
            case=case,
            message=message,
            original_name=name,
            content_type=content_type,
            size=size,
            sha256=digest,
            is_public=is_public,
            uploaded_by=_user(who),
        )
        # The stored name's extension follows the sniffed type, never the uploaded name.
        attachment.file.save(f"upload{ALLOWED_TYPES[content_type]}", upload, save=False)
        saved_name = attachment.file.name
        try:
            attachment.save()
            _audit(
                "case.attachment_added",
                case,
                actor=who,
                after={
                    "attachment": str(attachment.uid),
                    "type": content_type,
                    "size": size,
                    "public": is_public,
                },
            )
        except Exception:
            attachment.file.storage.delete(saved_name)
            raise
    return attachment


# --- Configuration imports ---------------------------------------------------------------------


@dataclass(frozen=True)
class CategoryUpsert:
    category: CaseCategory
    outcome: str  # "created", "updated" or "unchanged"


CATEGORY_FIELDS = (
    "name",
    "kind",
    "queue",
    "default_priority",
    "first_response_hours",
    "resolution_days",
    "sort_order",
    "active",
)


def _truthy(value) -> bool:
    if isinstance(value, str):
        return value.strip().casefold() in {"1", "true", "yes", "y", "是", "启用", "有效"}
    return bool(value)


def _category_values(
    *,
    code,
    name,
    kind,
    queue_code,
    default_priority,
    first_response_hours,
    resolution_days,
    sort_order,
    active,
) -> dict:
    from django.utils.text import slugify

    errors = {}
    code = (code or "").strip()
    if not code or slugify(code) != code.lower() or len(code) > 40:
        errors["code"] = "code"
    if not (name or "").strip():
        errors["name"] = "name"
    if kind not in CaseKind.values:
        errors["kind"] = "kind"
    queue = CaseQueue.objects.filter(code=(queue_code or "").strip()).first()
    if queue is None:
        errors["queue"] = "queue"
    try:
        priority = int(default_priority)
        if priority not in CasePriority.values:
            raise ValueError
    except (TypeError, ValueError):
        errors["default_priority"] = "default_priority"
        priority = None
    hours = days = None
    try:
        hours = Decimal(str(first_response_hours))
        days = Decimal(str(resolution_days))
        if hours < 0 or days < 0 or hours > 9999 or days > 9999:
            raise ValueError
    except (ArithmeticError, ValueError):
        errors["first_response_hours"] = "sla"
    try:
        order = int(sort_order)
        if order < 0:
            raise ValueError
    except (TypeError, ValueError):
        errors["sort_order"] = "sort_order"
        order = None
    if errors:
        field = next(iter(errors))
        raise CaseError("category.invalid", detail={"field": field, "fields": sorted(errors)})
    return {
        "code": code,
        "name": name.strip()[:100],
        "kind": kind,
        "queue": queue,
        "default_priority": priority,
        "first_response_hours": hours.quantize(Decimal("0.01")),
        "resolution_days": days.quantize(Decimal("0.01")),
        "sort_order": order,
        "active": _truthy(active),
    }


def _category_diff(existing: CaseCategory | None, values: dict) -> dict:
    if existing is None:
        return {k: v for k, v in values.items() if k != "code"}
    return {
        name: values[name] for name in CATEGORY_FIELDS if getattr(existing, name) != values[name]
    }


def category_upsert_preview(**raw) -> CategoryUpsert:
    """What `category_upsert` would do, without writing or locking."""
    values = _category_values(**raw)
    existing = CaseCategory.objects.filter(code=values["code"]).first()
    diff = _category_diff(existing, values)
    category = existing or CaseCategory(code=values["code"])
    for name, value in diff.items():
        setattr(category, name, value)
    outcome = "created" if existing is None else ("updated" if diff else "unchanged")
    return CategoryUpsert(category, outcome)


def category_upsert(*, actor=None, source: str = "", **raw) -> CategoryUpsert:
    """Create or update a category by its code (the complaint-categories import)."""
    values = _category_values(**raw)
    with transaction.atomic():
        existing = CaseCategory.objects.select_for_update().filter(code=values["code"]).first()
        diff = _category_diff(existing, values)
        if existing is None:
            category = CaseCategory.objects.create(**values)
            outcome = "created"
        elif diff:
            for name, value in diff.items():
                setattr(existing, name, value)
            existing.save(update_fields=[*diff, "updated_at"])
            category, outcome = existing, "updated"
        else:
            return CategoryUpsert(existing, "unchanged")
        audit_record(
            action=f"case_category.{outcome}",
            category=AuditCategory.CONFIG,
            target=category,
            actor=_user(actor),
            after={k: (v.code if isinstance(v, CaseQueue) else str(v)) for k, v in diff.items()},
            reason=source,
        )
    return CategoryUpsert(category, outcome)


def validation_message(exc: ValidationError) -> str:
    return " ".join(str(m) for m in exc.messages)
