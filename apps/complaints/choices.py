"""Kinds, channels, statuses and the transition table of consultation and complaint cases."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


class CaseKind(models.TextChoices):
    CONSULTATION = "consultation", _("Consultation")
    COMPLAINT = "complaint", _("Complaint")
    MERCHANT_REFUSAL = "merchant_refusal", _("Merchant refused to issue an invoice")
    APPEAL = "appeal", _("Appeal against a rejection or hold")
    PRIZE_PROBLEM = "prize_problem", _("Prize or payout problem")


class CaseChannel(models.TextChoices):
    API = "api", _("Consumer app")
    HOTLINE = "hotline", _("12345 hotline")
    STAFF = "staff", _("Staff entry")


class CaseStatus(models.TextChoices):
    NEW = "new", _("New")
    ASSIGNED = "assigned", _("Assigned")
    IN_PROGRESS = "in_progress", _("In progress")
    AWAITING_CONSUMER = "awaiting_consumer", _("Awaiting consumer")
    RESOLVED = "resolved", _("Resolved")
    CLOSED = "closed", _("Closed")


class CasePriority(models.IntegerChoices):
    LOW = 1, _("Low")
    NORMAL = 2, _("Normal")
    HIGH = 3, _("High")
    URGENT = 4, _("Urgent")


class CaseOutcome(models.TextChoices):
    """How a case was resolved. `substantiated` on a merchant-refusal case is what the risk
    model counts against the merchant (`selectors.substantiated_refusals_by_merchant`)."""

    ANSWERED = "answered", _("Answered")
    SUBSTANTIATED = "substantiated", _("Substantiated")
    NOT_SUBSTANTIATED = "not_substantiated", _("Not substantiated")
    WITHDRAWN = "withdrawn", _("Withdrawn by the consumer")
    DUPLICATE = "duplicate", _("Duplicate")
    REFERRED = "referred", _("Referred to another authority")


class MessageKind(models.TextChoices):
    PUBLIC_REPLY = "public_reply", _("Reply to the consumer")
    INTERNAL_NOTE = "internal_note", _("Internal note")
    CONSUMER_MESSAGE = "consumer_message", _("Message from the consumer")


# What the consumer may ever read of a case's thread.
PUBLIC_MESSAGE_KINDS = frozenset({MessageKind.PUBLIC_REPLY, MessageKind.CONSUMER_MESSAGE})


class CaseEvent(models.TextChoices):
    """What a row of a case's history records (a status change, or an event without one)."""

    OPENED = "opened", _("Opened")
    ASSIGNED = "assigned", _("Assigned")
    TAKEN = "taken", _("Taken")
    REASSIGNED = "reassigned", _("Reassigned")
    STARTED = "started", _("Work started")
    AWAITING = "awaiting", _("Waiting for the consumer")
    CONSUMER_REPLIED = "consumer_replied", _("Consumer replied")
    RESOLVED = "resolved", _("Resolved")
    CLOSED = "closed", _("Closed")
    REOPENED = "reopened", _("Reopened")
    ESCALATED = "escalated", _("Escalated")
    SLA_WARNING = "sla_warning", _("SLA warning")
    SLA_BREACHED = "sla_breached", _("SLA breached")
    RATED = "rated", _("Rated")
    LINKED = "linked", _("Records linked")


S = CaseStatus
CASE_TRANSITIONS: dict[str, frozenset[str]] = {
    S.NEW: frozenset({S.ASSIGNED, S.IN_PROGRESS, S.AWAITING_CONSUMER, S.RESOLVED}),
    # ASSIGNED → ASSIGNED is a reassignment.
    S.ASSIGNED: frozenset({S.ASSIGNED, S.NEW, S.IN_PROGRESS, S.AWAITING_CONSUMER, S.RESOLVED}),
    S.IN_PROGRESS: frozenset({S.ASSIGNED, S.AWAITING_CONSUMER, S.RESOLVED}),
    S.AWAITING_CONSUMER: frozenset({S.IN_PROGRESS, S.ASSIGNED, S.NEW, S.RESOLVED}),
    # Reopened (within the window) cases go back to their handler, or to the queue.
    S.RESOLVED: frozenset({S.CLOSED, S.ASSIGNED, S.NEW}),
    S.CLOSED: frozenset({S.ASSIGNED, S.NEW}),
}

OPEN_STATUSES = frozenset({S.NEW, S.ASSIGNED, S.IN_PROGRESS, S.AWAITING_CONSUMER})
# The resolution clock stops while the case waits for the consumer.
CLOCK_RUNNING_STATUSES = frozenset({S.NEW, S.ASSIGNED, S.IN_PROGRESS})
DONE_STATUSES = frozenset({S.RESOLVED, S.CLOSED})
