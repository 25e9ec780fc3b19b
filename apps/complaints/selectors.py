"""Reads of the complaints app, scoped to who is asking.

Who sees which case:
- a consumer: their own cases, and of those only the public thread (never internal notes);
- a handler (`complaints.handle_case`): the cases of the queues they are a member of, and the
  cases assigned to them;
- a supervisor: the same, and on the team pages the workload of every member of the queues
  they supervise;
- `complaints.read_all_cases` (auditor, campaign administrator) and superusers: every case.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Count, Q, QuerySet

from .choices import (
    CLOCK_RUNNING_STATUSES,
    OPEN_STATUSES,
    PUBLIC_MESSAGE_KINDS,
    CaseKind,
    CaseStatus,
)
from .exceptions import CaseError
from .models import (
    CannedReply,
    Case,
    CaseAttachment,
    CaseCategory,
    CaseMessage,
    CaseQueue,
    CaseQueueMembership,
    CaseStatusChange,
    FaqArticle,
)

PERM_HANDLE = "complaints.handle_case"
PERM_SUPERVISE = "complaints.supervise_case"
PERM_VIEW_ALL = "complaints.read_all_cases"

LIST_RELATED = ("category", "queue", "assignee")


def _active(user) -> bool:
    return bool(user is not None and user.is_authenticated and user.is_active)


def sees_all_cases(user) -> bool:
    return _active(user) and (user.is_superuser or user.has_perm(PERM_VIEW_ALL))


def may_use_desk(user) -> bool:
    """Whether the staff case desk is for this user at all."""
    return (
        _active(user)
        and user.is_staff
        and (
            user.is_superuser
            or user.has_perm(PERM_HANDLE)
            or user.has_perm(PERM_SUPERVISE)
            or user.has_perm(PERM_VIEW_ALL)
        )
    )


def queue_ids_of(user, *, supervised: bool = False) -> list[int]:
    """The queues `user` is a member (or a supervisor) of."""
    if not _active(user):
        return []
    cache_name = "_case_supervised_ids" if supervised else "_case_queue_ids"
    cached = getattr(user, cache_name, None)
    if cached is None:
        memberships = CaseQueueMembership.objects.filter(user=user)
        if supervised:
            memberships = memberships.filter(is_supervisor=True)
        cached = list(memberships.values_list("queue_id", flat=True))
        setattr(user, cache_name, cached)
    return cached


def is_supervisor_of(user, queue_id: int) -> bool:
    if not _active(user):
        return False
    if user.is_superuser:
        return True
    return user.has_perm(PERM_SUPERVISE) and queue_id in queue_ids_of(user, supervised=True)


def is_handler_of(user, case: Case) -> bool:
    """May `user` work on `case`: a handler in its queue, or its assignee, or a superuser."""
    if not _active(user):
        return False
    if user.is_superuser:
        return True
    if not user.has_perm(PERM_HANDLE):
        return False
    return case.assignee_id == user.pk or case.queue_id in queue_ids_of(user)


def case_list_visible(*, user) -> QuerySet[Case]:
    """Every case `user` may see (see the module docstring)."""
    if sees_all_cases(user):
        return Case.objects.all()
    if not may_use_desk(user):
        return Case.objects.none()
    return Case.objects.filter(Q(queue_id__in=queue_ids_of(user)) | Q(assignee=user))


def case_get_visible(*, user, reference: str) -> Case:
    case = (
        case_list_visible(user=user)
        .select_related(
            "category",
            "queue",
            "assignee",
            "consumer",
            "invoice",
            "award",
            "payout",
            "merchant",
            "draw",
            "created_by",
        )
        .filter(reference=reference)
        .first()
    )
    if case is None:
        raise CaseError("case.not_found", status_code=404)
    return case


def _ordered(queryset: QuerySet[Case]) -> QuerySet[Case]:
    return queryset.select_related(*LIST_RELATED).order_by("-priority", "resolution_due", "id")


def case_list_mine(*, user) -> QuerySet[Case]:
    """My open cases, most urgent first, then soonest due."""
    return _ordered(Case.objects.filter(assignee=user, status__in=sorted(OPEN_STATUSES)))


@dataclass(frozen=True)
class QueueFilter:
    queue_id: int | None = None
    status: str = ""
    assignee_id: int | None = None
    unassigned: bool = False
    kind: str = ""


def case_list_queue(*, user, filters: QueueFilter | None = None) -> QuerySet[Case]:
    """The open cases of the queues `user` works in (every queue for `read_all_cases`)."""
    filters = filters or QueueFilter()
    queryset = Case.objects.filter(status__in=sorted(OPEN_STATUSES))
    if not sees_all_cases(user):
        allowed = queue_ids_of(user)
        if filters.queue_id is not None and filters.queue_id not in allowed:
            return Case.objects.none()
        queryset = queryset.filter(queue_id__in=allowed)
    if filters.queue_id is not None:
        queryset = queryset.filter(queue_id=filters.queue_id)
    if filters.status:
        queryset = queryset.filter(status=filters.status)
    if filters.kind:
        queryset = queryset.filter(kind=filters.kind)
    if filters.unassigned:
        queryset = queryset.filter(assignee__isnull=True)
    elif filters.assignee_id is not None:
        queryset = queryset.filter(assignee_id=filters.assignee_id)
    return _ordered(queryset)


def case_list_at_risk(*, user, now: datetime, horizon: datetime) -> QuerySet[Case]:
    """Open cases in scope whose first response or resolution is overdue or due before
    `horizon` (the end of the warning period, in working time). A case waiting for the
    consumer has its resolution clock stopped."""
    due = Q(first_responded_at__isnull=True, first_response_due__lte=horizon) | Q(
        status__in=sorted(CLOCK_RUNNING_STATUSES), resolution_due__lte=horizon
    )
    queryset = case_list_visible(user=user).filter(due, status__in=sorted(OPEN_STATUSES))
    return queryset.select_related(*LIST_RELATED).order_by("resolution_due", "id")


@dataclass(frozen=True)
class QueueOverview:
    """Open cases of some queues, counted once: per (queue, assignee), and in total."""

    open: int
    unassigned: int
    escalated: int
    by_member: dict[tuple[int, int | None], dict]


def queue_overview(*, queue_ids: list[int]) -> QueueOverview:
    """One GROUP BY over the open cases of `queue_ids` (an index-only scan of
    `case_open_workload`): the queue page's totals and the team's workload."""
    rows = (
        Case.objects.filter(queue_id__in=queue_ids, status__in=sorted(OPEN_STATUSES))
        .order_by()
        .values("queue_id", "assignee_id")
        # Only columns of `case_open_workload` (no id): an index-only scan.
        .annotate(open=Count("*"), escalated=Count("escalated", filter=Q(escalated=True)))
    )
    by_member = {(r["queue_id"], r["assignee_id"]): r for r in rows}
    return QueueOverview(
        open=sum(r["open"] for r in by_member.values()),
        unassigned=sum(r["open"] for k, r in by_member.items() if k[1] is None),
        escalated=sum(r["escalated"] for r in by_member.values()),
        by_member=by_member,
    )


def workload(*, queue_ids: list[int], overview: QueueOverview | None = None) -> list[dict]:
    """Per member of the queues: open cases assigned, of which escalated; availability."""
    overview = overview or queue_overview(queue_ids=queue_ids)
    members = (
        CaseQueueMembership.objects.filter(queue_id__in=queue_ids)
        .select_related("user", "queue")
        .order_by("queue__name", "user__username")
    )
    rows = []
    for member in members:
        found = overview.by_member.get((member.queue_id, member.user_id), {})
        rows.append(
            {
                "membership": member,
                "open": found.get("open", 0),
                "escalated": found.get("escalated", 0),
            }
        )
    return rows


def queue_choices_for(user) -> QuerySet[CaseQueue]:
    queues = CaseQueue.objects.order_by("name")
    if sees_all_cases(user):
        return queues
    return queues.filter(pk__in=queue_ids_of(user))


def queue_members(*, queue_id: int) -> QuerySet[CaseQueueMembership]:
    return (
        CaseQueueMembership.objects.filter(queue_id=queue_id, user__is_active=True)
        .select_related("user")
        .order_by("user__username")
    )


@dataclass(frozen=True)
class TimelineEntry:
    at: datetime
    kind: str  # "message", "event" or "attachment"
    item: object


def case_timeline(*, case: Case, include_internal: bool = True) -> list[TimelineEntry]:
    """Messages, history and attachments of a case in time order (three queries)."""
    messages = CaseMessage.objects.filter(case=case).select_related("author", "article")
    if not include_internal:
        messages = messages.filter(kind__in=sorted(PUBLIC_MESSAGE_KINDS))
    history = CaseStatusChange.objects.filter(case=case).select_related("actor", "assignee")
    attachments = CaseAttachment.objects.filter(case=case).select_related("uploaded_by")
    if not include_internal:
        attachments = attachments.filter(is_public=True)
    entries = (
        [TimelineEntry(m.created_at, "message", m) for m in messages]
        + [TimelineEntry(h.created_at, "event", h) for h in history]
        + [TimelineEntry(a.created_at, "attachment", a) for a in attachments]
    )
    order = {"event": 0, "message": 1, "attachment": 2}
    entries.sort(key=lambda e: (e.at, order[e.kind], e.item.pk))
    return entries


# --- consumers ----------------------------------------------------------------------------


def case_list_for_consumer(*, consumer) -> QuerySet[Case]:
    return (
        Case.objects.filter(consumer=consumer)
        .select_related("category")
        .order_by("-opened_at", "-id")
    )


def case_public_messages(*, case: Case) -> QuerySet[CaseMessage]:
    """The thread as the consumer sees it: replies and their own messages, never notes."""
    return (
        CaseMessage.objects.filter(case=case, kind__in=sorted(PUBLIC_MESSAGE_KINDS))
        .select_related("article")
        .order_by("created_at", "id")
    )


def case_public_attachments(*, case: Case) -> QuerySet[CaseAttachment]:
    return CaseAttachment.objects.filter(case=case, is_public=True).order_by("created_at", "id")


def category_list_active() -> QuerySet[CaseCategory]:
    return CaseCategory.objects.filter(active=True).order_by("kind", "sort_order", "name")


def canned_replies_for(*, kind: str) -> QuerySet[CannedReply]:
    return CannedReply.objects.filter(Q(kind="") | Q(kind=kind), active=True).order_by("title")


def faq_published() -> QuerySet[FaqArticle]:
    return FaqArticle.objects.filter(is_published=True).order_by("sort_order", "title")


# --- for other apps -------------------------------------------------------------------------


def substantiated_refusals_by_merchant(since: datetime) -> dict[int, int]:
    """Merchant id → number of merchant-refusal cases resolved since `since` as substantiated
    (the risk model's input; a reopened case counts again only once resolved again)."""
    rows = (
        Case.objects.filter(
            kind=CaseKind.MERCHANT_REFUSAL,
            substantiated=True,
            merchant__isnull=False,
            resolved_at__gte=since,
            status__in=[CaseStatus.RESOLVED, CaseStatus.CLOSED],
        )
        .values("merchant_id")
        .annotate(n=Count("id"))
    )
    return {row["merchant_id"]: row["n"] for row in rows}
