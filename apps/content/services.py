"""Every write of the publicity app: articles through their editorial workflow, images, the
winners' consents and the scheduled publication sweep.

Invariants kept here (and backed by CHECK constraints in `models.py`):
- every status change follows `ARTICLE_TRANSITIONS`, under a row lock of the article, with a
  history row and an audit record in the same transaction;
- text changes only in draft, always sanitised (`sanitize.py`), and every image has alt text;
- the approver is neither the author nor the last editor (two-person rule);
- a winner story is approved, scheduled and published only while a consent that is not
  withdrawn covers exactly its current text, and shows the full name only if that consent
  says so; withdrawing the consent archives the story in the same transaction;
- scheduled articles are published by the beat task once their time has come, once.
"""

from __future__ import annotations

import logging
from datetime import datetime

from django.core.files.base import ContentFile
from django.db import transaction
from django.utils import timezone

from apps.audit.models import AuditCategory
from apps.audit.services import audit_record
from apps.common.masking import mask_name
from apps.common.states import check_transition

from .choices import (
    ARTICLE_TRANSITIONS,
    EDITABLE_STATUSES,
    LIVE_OR_ON_ITS_WAY,
    ArticleKind,
    ArticleStatus,
    ConsentScope,
)
from .exceptions import ContentError
from .images import reencode_image
from .models import Article, ArticleImage, ArticleStatusChange, WinnerConsent, text_digest
from .sanitize import images_without_alt, plain_text, sanitize_html

logger = logging.getLogger(__name__)

PERM_ADD = "content.add_article"
PERM_WRITE = "content.change_article"
PERM_REVIEW = "content.review_article"
PERM_PUBLISH = "content.publish_article"
PERM_ADD_IMAGE = "content.add_articleimage"
PERM_RECORD_CONSENT = "content.add_winnerconsent"
PERM_WITHDRAW_CONSENT = "content.change_winnerconsent"

S = ArticleStatus


def _user(actor):
    return actor if actor is not None and getattr(actor, "is_authenticated", False) else None


def _require(actor, perm: str, article: Article | None = None) -> None:
    user = _user(actor)
    if user is None or not user.is_active or not user.has_perm(perm):
        detail = {"permission": perm}
        if article is not None:
            detail["article"] = str(article.public_id)
        raise ContentError("article.not_permitted", detail=detail, status_code=403)


def _lock(article: Article) -> Article:
    return Article.objects.select_for_update().get(pk=article.pk)


def _snapshot(article: Article) -> dict:
    return {
        "status": article.status,
        "kind": article.kind,
        "title": article.title,
        "digest": article.digest,
    }


def _move(article: Article, target: str, *, actor, action: str, reason: str = "", fields=()):
    """Move a locked article to `target` (checked), save, write history and audit."""
    before = _snapshot(article)
    check_transition(ARTICLE_TRANSITIONS, article.status, target, entity="article")
    previous = article.status
    article.status = target
    article.save(update_fields=["status", "updated_at", *fields])
    ArticleStatusChange.objects.create(
        article=article,
        from_status=previous,
        to_status=target,
        actor=_user(actor),
        reason=str(reason)[:300],
        digest=article.digest,
    )
    audit_record(
        action=action,
        category=AuditCategory.STATE,
        target=article,
        actor=_user(actor),
        before=before,
        after=_snapshot(article),
        reason=str(reason),
    )


def _clean_fields(*, kind: str, title: str, summary: str, body: str) -> dict:
    if kind not in ArticleKind.values:
        raise ContentError("article.kind_invalid", detail={"field": "kind"})
    title = " ".join((title or "").split())[:200]
    if not title:
        raise ContentError("article.title_required", detail={"field": "title"})
    summary = " ".join((summary or "").split())[:300]
    body = sanitize_html(body or "")
    if images_without_alt(body):
        raise ContentError("article.image_alt_missing", detail={"field": "body"})
    return {"kind": kind, "title": title, "summary": summary, "body": body}


def article_create(*, kind: str, title: str, body: str, summary: str = "", actor) -> Article:
    """A new draft, its text sanitised. The actor is its author and last editor."""
    _require(actor, PERM_ADD)
    values = _clean_fields(kind=kind, title=title, summary=summary, body=body)
    with transaction.atomic():
        article = Article.objects.create(**values, author=actor, last_edited_by=actor)
        ArticleStatusChange.objects.create(
            article=article, from_status="", to_status=S.DRAFT, actor=actor, digest=article.digest
        )
        audit_record(
            action="article.created", target=article, actor=actor, after=_snapshot(article)
        )
    return article


def article_update(
    *,
    article: Article,
    actor,
    title: str | None = None,
    summary: str | None = None,
    body: str | None = None,
    kind: str | None = None,
) -> Article:
    """Change a draft's text (sanitised); the actor becomes its last editor, so they cannot
    approve it."""
    _require(actor, PERM_WRITE, article)
    with transaction.atomic():
        article = _lock(article)
        if article.status not in EDITABLE_STATUSES:
            raise ContentError("article.not_editable", status_code=409)
        values = _clean_fields(
            kind=article.kind if kind is None else kind,
            title=article.title if title is None else title,
            summary=article.summary if summary is None else summary,
            body=article.body if body is None else body,
        )
        changed = [name for name, value in values.items() if getattr(article, name) != value]
        if not changed:
            return article
        before = _snapshot(article)
        for name in changed:
            setattr(article, name, values[name])
        article.last_edited_by = actor
        article.save(update_fields=[*changed, "last_edited_by", "updated_at"])
        audit_record(
            action="article.edited",
            target=article,
            actor=actor,
            before=before,
            after={**_snapshot(article), "fields": changed},
        )
    return article


def _valid_consent(article: Article) -> WinnerConsent | None:
    return article.consents.filter(withdrawn_at__isnull=True).first()


def _check_story(article: Article) -> None:
    """A winner story may go ahead: a valid consent covers this exact text and the name shown."""
    if article.kind != ArticleKind.WINNER_STORY:
        return
    consent = _valid_consent(article)
    if consent is None:
        raise ContentError("story.consent_missing", status_code=409)
    if consent.text_digest != article.digest:
        raise ContentError("story.consent_text_changed", status_code=409)
    if consent.scope != ConsentScope.FULL_NAME:
        name = (consent.winner_name or "").strip()
        text = " ".join([article.title, article.summary, plain_text(article.body)])
        if len(name) >= 2 and name in text:
            raise ContentError("story.full_name_not_consented", status_code=409)


def article_submit(*, article: Article, actor) -> Article:
    """Draft → in review."""
    _require(actor, PERM_WRITE, article)
    with transaction.atomic():
        article = _lock(article)
        if not article.body.strip():
            raise ContentError("article.body_required", detail={"field": "body"})
        article.submitted_at = timezone.now()
        _move(
            article, S.IN_REVIEW, actor=actor, action="article.submitted", fields=["submitted_at"]
        )
    return article


def article_approve(*, article: Article, actor, note: str = "") -> Article:
    """In review → approved, by a reviewer who is neither the author nor the last editor."""
    _require(actor, PERM_REVIEW, article)
    with transaction.atomic():
        article = _lock(article)
        if actor.pk in {article.author_id, article.last_edited_by_id}:
            raise ContentError(
                "article.own_approval",
                detail={"article": str(article.public_id)},
                status_code=403,
            )
        if article.status == S.IN_REVIEW:
            _check_story(article)
        article.approved_by = actor
        article.approved_at = timezone.now()
        _move(
            article,
            S.APPROVED,
            actor=actor,
            action="article.approved",
            reason=note,
            fields=["approved_by", "approved_at"],
        )
    return article


def _clear_approval(article: Article) -> list[str]:
    article.approved_by = None
    article.approved_at = None
    article.publish_at = None
    return ["approved_by", "approved_at", "publish_at"]


def article_return_to_draft(*, article: Article, actor, reason: str) -> Article:
    """In review, approved or archived → draft (the approval is void: it must be approved
    again after any change)."""
    reason = (reason or "").strip()
    if not reason:
        raise ContentError("article.reason_required", detail={"field": "reason"})
    with transaction.atomic():
        article = _lock(article)
        perm = PERM_REVIEW if article.status in {S.IN_REVIEW, S.APPROVED} else PERM_PUBLISH
        _require(actor, perm, article)
        fields = _clear_approval(article)
        article.archived_at = None
        _move(
            article,
            S.DRAFT,
            actor=actor,
            action="article.returned_to_draft",
            reason=reason,
            fields=[*fields, "archived_at"],
        )
    return article


def article_schedule(
    *, article: Article, publish_at: datetime, actor, now: datetime | None = None
) -> Article:
    """Approved → scheduled for `publish_at` (in the future); the beat task publishes it."""
    _require(actor, PERM_PUBLISH, article)
    now = now or timezone.now()
    if publish_at <= now:
        raise ContentError("article.schedule_in_past", detail={"field": "publish_at"})
    with transaction.atomic():
        article = _lock(article)
        _check_story(article)
        article.publish_at = publish_at
        _move(
            article,
            S.SCHEDULED,
            actor=actor,
            action="article.scheduled",
            reason=publish_at.isoformat(),
            fields=["publish_at"],
        )
    return article


def article_unschedule(*, article: Article, actor) -> Article:
    """Scheduled → approved (publication postponed indefinitely)."""
    _require(actor, PERM_PUBLISH, article)
    with transaction.atomic():
        article = _lock(article)
        article.publish_at = None
        _move(article, S.APPROVED, actor=actor, action="article.unscheduled", fields=["publish_at"])
    return article


def _publish(article: Article, *, actor, action: str, now: datetime) -> None:
    _check_story(article)
    article.published_at = now
    article.archived_at = None
    _move(article, S.PUBLISHED, actor=actor, action=action, fields=["published_at", "archived_at"])


def article_publish(*, article: Article, actor) -> Article:
    """Approved or scheduled → published now."""
    _require(actor, PERM_PUBLISH, article)
    with transaction.atomic():
        article = _lock(article)
        _publish(article, actor=actor, action="article.published", now=timezone.now())
    return article


def article_archive(*, article: Article, actor, reason: str) -> Article:
    """Any status but archived → archived: off the public pages and the API at once."""
    _require(actor, PERM_PUBLISH, article)
    reason = (reason or "").strip()
    if not reason:
        raise ContentError("article.reason_required", detail={"field": "reason"})
    with transaction.atomic():
        article = _lock(article)
        article.archived_at = timezone.now()
        _move(
            article,
            S.ARCHIVED,
            actor=actor,
            action="article.archived",
            reason=reason,
            fields=["archived_at"],
        )
    return article


def articles_publish_due(*, now: datetime | None = None, limit: int = 500) -> int:
    """Publish every scheduled article whose time has come (the beat task, every minute).

    Each article in its own transaction under its row lock, re-checked after locking, so two
    sweeps at once publish it once. A winner story whose consent no longer covers it is left
    unpublished (and logged). Returns how many were published.
    """
    now = now or timezone.now()
    due = list(
        Article.objects.filter(status=S.SCHEDULED, publish_at__lte=now)
        .order_by("publish_at", "pk")
        .values_list("pk", flat=True)[:limit]
    )
    published = 0
    for pk in due:
        with transaction.atomic():
            article = Article.objects.select_for_update(skip_locked=True).filter(pk=pk).first()
            if article is None or article.status != S.SCHEDULED or article.publish_at > now:
                continue
            try:
                _publish(article, actor=None, action="article.published_on_schedule", now=now)
            except ContentError as exc:
                logger.warning("scheduled article %s not published: %s", article.pk, exc.code)
                continue
            published += 1
    return published


# --- Images -----------------------------------------------------------------------------------


def article_image_add(*, article: Article, upload, alt_text: str, actor) -> ArticleImage:
    """Attach an image to a draft: checked, re-encoded (`images.reencode_image`), with alt text.
    Its path can then be used in the article's text."""
    _require(actor, PERM_ADD_IMAGE, article)
    alt_text = " ".join((alt_text or "").split())[:300]
    if not alt_text:
        raise ContentError("article.image_alt_missing", detail={"field": "alt_text"})
    clean = reencode_image(upload)
    with transaction.atomic():
        article = _lock(article)
        if article.status not in EDITABLE_STATUSES:
            raise ContentError("article.not_editable", status_code=409)
        image = ArticleImage(
            article=article,
            alt_text=alt_text,
            content_type=clean.content_type,
            extension=clean.extension,
            width=clean.width,
            height=clean.height,
            size=len(clean.content),
            sha256=clean.sha256,
            uploaded_by=actor,
        )
        image.file.save(
            f"{image.public_id}.{clean.extension}", ContentFile(clean.content), save=False
        )
        image.save()
        audit_record(
            action="article.image_added",
            target=article,
            actor=actor,
            after={
                "image": str(image.public_id),
                "content_type": clean.content_type,
                "width": clean.width,
                "height": clean.height,
                "original_sha256": clean.original_sha256,
                "sha256": clean.sha256,
            },
        )
    return image


# --- Winners' consent ---------------------------------------------------------------------------


def consent_record(
    *,
    article: Article,
    winner_name: str,
    scope: str,
    consented_at: datetime,
    evidence: str,
    actor,
    consumer=None,
) -> WinnerConsent:
    """Record a winner's consent to the story's current text (digest and copy kept)."""
    _require(actor, PERM_RECORD_CONSENT, article)
    winner_name = " ".join((winner_name or "").split())
    if not winner_name:
        raise ContentError("story.winner_name_required", detail={"field": "winner_name"})
    if scope not in ConsentScope.values:
        raise ContentError("story.consent_missing", detail={"field": "scope"})
    evidence = (evidence or "").strip()[:200]
    if not evidence:
        raise ContentError("article.reason_required", detail={"field": "evidence"})
    with transaction.atomic():
        article = _lock(article)
        if article.kind != ArticleKind.WINNER_STORY:
            raise ContentError("story.not_a_winner_story", status_code=409)
        if _valid_consent(article) is not None:
            raise ContentError("story.consent_exists", status_code=409)
        consent = WinnerConsent.objects.create(
            article=article,
            winner_name=winner_name,
            consumer=consumer,
            scope=scope,
            consented_at=consented_at,
            evidence=evidence,
            text_digest=text_digest(article.title, article.summary, article.body),
            text_snapshot=f"{article.title}\n\n{article.summary}\n\n{article.body}",
            recorded_by=actor,
        )
        audit_record(
            action="winner_consent.recorded",
            target=article,
            actor=actor,
            after={
                "consent": str(consent.public_id),
                "winner": mask_name(winner_name),
                "scope": scope,
                "consented_at": consented_at.isoformat(),
                "text_digest": consent.text_digest,
            },
        )
    return consent


def consent_withdraw(*, consent: WinnerConsent, actor, note: str) -> WinnerConsent:
    """The winner withdrew their consent: record it and, in the same transaction, take the
    story off the public pages and the API (archived) if it was published or on its way."""
    _require(actor, PERM_WITHDRAW_CONSENT)
    note = (note or "").strip()
    if not note:
        raise ContentError("article.reason_required", detail={"field": "note"})
    with transaction.atomic():
        # Lock order everywhere: the article, then its consents.
        article = _lock(consent.article)
        consent = WinnerConsent.objects.select_for_update().get(pk=consent.pk)
        if consent.withdrawn_at is not None:
            raise ContentError("story.consent_withdrawn", status_code=409)
        consent.withdrawn_at = timezone.now()
        consent.withdrawn_by = actor
        consent.withdrawal_note = note[:300]
        consent.save(update_fields=["withdrawn_at", "withdrawn_by", "withdrawal_note"])
        audit_record(
            action="winner_consent.withdrawn",
            target=article,
            actor=actor,
            before={"consent": str(consent.public_id), "valid": True},
            after={"consent": str(consent.public_id), "valid": False},
            reason=note,
        )
        if article.status in LIVE_OR_ON_ITS_WAY:
            article.archived_at = consent.withdrawn_at
            _clear_approval(article)
            _move(
                article,
                S.ARCHIVED,
                actor=actor,
                action="article.archived_consent_withdrawn",
                reason=note,
                fields=["archived_at", "approved_by", "approved_at", "publish_at"],
            )
    return consent
