"""Kinds of publicity articles, their editorial statuses and the transition table."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


class ArticleKind(models.TextChoices):
    POLICY = "policy", _("Policy explainer")
    GUIDE = "guide", _("How-to guide")
    WINNER_STORY = "winner_story", _("Winner story")
    NOTICE = "notice", _("Notice")


class ArticleStatus(models.TextChoices):
    DRAFT = "draft", _("Draft")
    IN_REVIEW = "in_review", _("In review")
    APPROVED = "approved", _("Approved")
    SCHEDULED = "scheduled", _("Scheduled")
    PUBLISHED = "published", _("Published")
    ARCHIVED = "archived", _("Archived")


class ConsentScope(models.TextChoices):
    """What the winner agreed to show: the masked name (张*三) or the full name."""

    MASKED_NAME = "masked_name", _("Masked name only")
    FULL_NAME = "full_name", _("Full name")


S = ArticleStatus
ARTICLE_TRANSITIONS: dict[str, frozenset[str]] = {
    S.DRAFT: frozenset({S.IN_REVIEW, S.ARCHIVED}),
    # Returned to its writers, or approved by somebody who did not write it.
    S.IN_REVIEW: frozenset({S.DRAFT, S.APPROVED, S.ARCHIVED}),
    S.APPROVED: frozenset({S.SCHEDULED, S.PUBLISHED, S.DRAFT, S.ARCHIVED}),
    S.SCHEDULED: frozenset({S.PUBLISHED, S.APPROVED, S.ARCHIVED}),
    S.PUBLISHED: frozenset({S.ARCHIVED}),
    # Taking an archived article up again means writing and approving it again.
    S.ARCHIVED: frozenset({S.DRAFT}),
}

#: Statuses that carry a valid approval (database CHECK: approved_by is set).
APPROVED_STATUSES = frozenset({S.APPROVED, S.SCHEDULED, S.PUBLISHED})
#: Statuses the text may be changed in.
EDITABLE_STATUSES = frozenset({S.DRAFT})
#: Statuses a winner's consent withdrawal takes the story out of at once.
LIVE_OR_ON_ITS_WAY = frozenset({S.IN_REVIEW, S.APPROVED, S.SCHEDULED, S.PUBLISHED})
