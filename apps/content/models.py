"""Publicity articles (policy explainers, how-to guides, winner stories, notices), their
editorial history, their images and the winners' consents.

An article moves draft → in review → approved (by somebody who neither wrote nor last edited
it) → scheduled or published → archived, only through `services`, each step a history row and
an audit record. The database backs the two-person rule and the status invariants with CHECK
constraints, so no code path (admin, shell, bulk update) can publish an unapproved article or
one approved by its own writer.
"""

from __future__ import annotations

import hashlib
import uuid

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils.translation import gettext_lazy as _

from apps.common.fields import EncryptedTextField
from apps.common.masking import mask_name
from apps.common.models import TimeStampedModel

from .choices import APPROVED_STATUSES, ArticleKind, ArticleStatus, ConsentScope


def text_digest(title: str, summary: str, body: str) -> str:
    """SHA-256 over the published text: what a winner's consent is bound to."""
    payload = "\x1f".join([title or "", summary or "", body or ""]).encode("utf-8")
    return hashlib.sha256(payload).hexdigest()


class Article(TimeStampedModel):
    """One article. `body` is stored sanitised (allow-list HTML, `sanitize.py`).

    Invariants (CHECK): the approver differs from the author and from the last editor; approved,
    scheduled and published articles have an approver; a scheduled one has a time; a published
    one a publication time.
    """

    public_id = models.UUIDField(_("public ID"), default=uuid.uuid4, unique=True, editable=False)
    kind = models.CharField(_("kind"), max_length=16, choices=ArticleKind.choices, db_index=True)
    title = models.CharField(_("title"), max_length=200)
    summary = models.CharField(_("summary"), max_length=300, blank=True, default="")
    body = models.TextField(_("text"), blank=True, default="")
    status = models.CharField(
        _("status"),
        max_length=16,
        choices=ArticleStatus.choices,
        default=ArticleStatus.DRAFT,
        db_index=True,
    )
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("author"),
    )
    last_edited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("last edited by"),
    )
    submitted_at = models.DateTimeField(_("submitted for review at"), null=True, blank=True)
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("approved by"),
    )
    approved_at = models.DateTimeField(_("approved at"), null=True, blank=True)
    publish_at = models.DateTimeField(_("scheduled for"), null=True, blank=True, db_index=True)
    published_at = models.DateTimeField(_("published at"), null=True, blank=True, db_index=True)
    archived_at = models.DateTimeField(_("archived at"), null=True, blank=True)

    class Meta:
        verbose_name = _("article")
        verbose_name_plural = _("articles")
        ordering = ["-published_at", "-created_at"]
        permissions = [
            ("review_article", _("Can approve or return articles in review")),
            ("publish_article", _("Can schedule, publish and archive approved articles")),
        ]
        indexes = [
            models.Index(fields=["status", "kind", "-published_at"], name="article_public_list"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=ArticleStatus.values), name="article_status_valid"
            ),
            models.CheckConstraint(
                condition=Q(kind__in=ArticleKind.values), name="article_kind_valid"
            ),
            # The two-person rule: nobody approves what they wrote or last changed.
            models.CheckConstraint(
                condition=Q(approved_by__isnull=True)
                | (~Q(approved_by=F("author")) & ~Q(approved_by=F("last_edited_by"))),
                name="article_approver_not_writer",
            ),
            models.CheckConstraint(
                condition=~Q(status__in=sorted(APPROVED_STATUSES))
                | (Q(approved_by__isnull=False) & Q(approved_at__isnull=False)),
                name="article_approved_has_approver",
            ),
            models.CheckConstraint(
                condition=~Q(status=ArticleStatus.SCHEDULED) | Q(publish_at__isnull=False),
                name="article_scheduled_has_time",
            ),
            models.CheckConstraint(
                condition=~Q(status=ArticleStatus.PUBLISHED) | Q(published_at__isnull=False),
                name="article_published_has_time",
            ),
        ]

    def __str__(self) -> str:
        return self.title

    @property
    def digest(self) -> str:
        return text_digest(self.title, self.summary, self.body)

    @property
    def is_published(self) -> bool:
        return self.status == ArticleStatus.PUBLISHED


class ArticleStatusChange(models.Model):
    """One step of an article's editorial history (append-only, written by services)."""

    article = models.ForeignKey(
        Article, on_delete=models.CASCADE, related_name="history", verbose_name=_("article")
    )
    from_status = models.CharField(
        _("from"), max_length=16, choices=ArticleStatus.choices, blank=True
    )
    to_status = models.CharField(_("to"), max_length=16, choices=ArticleStatus.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("by"),
    )
    reason = models.CharField(_("reason"), max_length=300, blank=True, default="")
    digest = models.CharField(_("text digest"), max_length=64, blank=True, default="")
    created_at = models.DateTimeField(_("at"), auto_now_add=True, db_index=True)

    class Meta:
        verbose_name = _("article status change")
        verbose_name_plural = _("article status changes")
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.get_from_status_display() or '—'} → {self.get_to_status_display()}"


def _image_path(instance, filename: str) -> str:
    return f"content/images/{instance.public_id}.{instance.extension}"


class ArticleImage(models.Model):
    """An image uploaded for an article, stored only in its re-encoded form (`images.py`)."""

    public_id = models.UUIDField(_("public ID"), default=uuid.uuid4, unique=True, editable=False)
    article = models.ForeignKey(
        Article, on_delete=models.CASCADE, related_name="images", verbose_name=_("article")
    )
    file = models.FileField(_("file"), upload_to=_image_path, max_length=200)
    alt_text = models.CharField(
        _("text alternative"),
        max_length=300,
        help_text=_("What the image shows, read out to people who cannot see it."),
    )
    content_type = models.CharField(_("content type"), max_length=20)
    extension = models.CharField(_("extension"), max_length=5)
    width = models.PositiveIntegerField(_("width"))
    height = models.PositiveIntegerField(_("height"))
    size = models.PositiveIntegerField(_("size (bytes)"))
    sha256 = models.CharField(_("SHA-256"), max_length=64)
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("uploaded by"),
    )
    created_at = models.DateTimeField(_("uploaded at"), auto_now_add=True)

    class Meta:
        verbose_name = _("article image")
        verbose_name_plural = _("article images")
        ordering = ["created_at", "id"]
        constraints = [
            models.CheckConstraint(
                condition=~Q(alt_text=""), name="articleimage_alt_text_required"
            ),
            models.CheckConstraint(
                condition=Q(content_type__in=["image/jpeg", "image/png"]),
                name="articleimage_reencoded_type",
            ),
        ]

    def __str__(self) -> str:
        return self.alt_text

    @property
    def path(self) -> str:
        from django.urls import reverse

        return reverse("content:image", kwargs={"public_id": self.public_id, "ext": self.extension})


class WinnerConsent(models.Model):
    """A winner's consent to a winner story: who (the winner, and the staff member who recorded
    it), when, on what evidence, and for which text (its digest and a copy).

    A story is published only while a consent that is not withdrawn covers its current text
    (`services`); at most one such consent per story (unique constraint). The winner's name is
    personal data, encrypted at rest; the public sees it masked unless the consent covers the
    full name. Withdrawing takes the story down in the same transaction.
    """

    public_id = models.UUIDField(_("public ID"), default=uuid.uuid4, unique=True, editable=False)
    article = models.ForeignKey(
        Article, on_delete=models.PROTECT, related_name="consents", verbose_name=_("article")
    )
    winner_name = EncryptedTextField(_("winner's name"))
    consumer = models.ForeignKey(
        "accounts.Consumer",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("consumer"),
    )
    scope = models.CharField(
        _("name shown"),
        max_length=16,
        choices=ConsentScope.choices,
        default=ConsentScope.MASKED_NAME,
    )
    consented_at = models.DateTimeField(_("consented at"))
    evidence = models.CharField(
        _("evidence"),
        max_length=200,
        help_text=_("E.g. the number of the signed consent form or the recorded call."),
    )
    text_digest = models.CharField(_("text digest"), max_length=64)
    text_snapshot = models.TextField(_("consented text"))
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("recorded by"),
    )
    recorded_at = models.DateTimeField(_("recorded at"), auto_now_add=True)
    withdrawn_at = models.DateTimeField(_("withdrawn at"), null=True, blank=True)
    withdrawn_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("withdrawal recorded by"),
    )
    withdrawal_note = models.CharField(_("withdrawal note"), max_length=300, blank=True, default="")

    class Meta:
        verbose_name = _("winner consent")
        verbose_name_plural = _("winner consents")
        ordering = ["-recorded_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["article"],
                condition=Q(withdrawn_at__isnull=True),
                name="winnerconsent_one_valid_per_article",
            ),
            models.CheckConstraint(
                condition=Q(scope__in=ConsentScope.values), name="winnerconsent_scope_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.masked_name} · {self.article_id}"

    @property
    def masked_name(self) -> str:
        return mask_name(self.winner_name)

    @property
    def display_name(self) -> str:
        """The name the public sees."""
        if self.scope == ConsentScope.FULL_NAME:
            return self.winner_name
        return self.masked_name

    @property
    def is_valid(self) -> bool:
        return self.withdrawn_at is None
