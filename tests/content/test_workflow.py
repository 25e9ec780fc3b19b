"""The editorial workflow: draft → in review → approved (by somebody else) → scheduled or
published → archived; history and audit for every step; the database's two-person rule."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.common.exceptions import InvalidTransition
from apps.content import services
from apps.content.choices import ArticleStatus
from apps.content.exceptions import ContentError
from apps.content.models import Article

from .conftest import make_article, publish, staff_in_role

pytestmark = pytest.mark.django_db


def test_full_workflow_writes_history_and_audit(writer, reviewer):
    article = make_article(writer)
    assert article.status == ArticleStatus.DRAFT
    services.article_submit(article=article, actor=writer)
    services.article_approve(article=article, actor=reviewer)
    services.article_publish(article=article, actor=reviewer)
    services.article_archive(article=article, actor=reviewer, reason="活动结束")
    article.refresh_from_db()
    assert article.status == ArticleStatus.ARCHIVED
    steps = list(article.history.values_list("from_status", "to_status", "actor__username"))
    assert steps == [
        ("", "draft", "writer"),
        ("draft", "in_review", "writer"),
        ("in_review", "approved", "reviewer"),
        ("approved", "published", "reviewer"),
        ("published", "archived", "reviewer"),
    ]
    actions = list(
        AuditEvent.objects.filter(target_type="content.article", target_id=str(article.pk))
        .order_by("seq")
        .values_list("action", flat=True)
    )
    assert actions == [
        "article.created",
        "article.submitted",
        "article.approved",
        "article.published",
        "article.archived",
    ]


def test_writer_cannot_approve_own_article(writer):
    article = make_article(writer)
    services.article_submit(article=article, actor=writer)
    with pytest.raises(ContentError) as exc:
        services.article_approve(article=article, actor=writer)
    assert exc.value.code == "article.own_approval"
    article.refresh_from_db()
    assert article.status == ArticleStatus.IN_REVIEW
    assert article.approved_by is None


def test_last_editor_cannot_approve_either(writer, reviewer):
    article = make_article(writer)
    services.article_update(article=article, actor=reviewer, summary="另一位同事改过摘要。")
    services.article_submit(article=article, actor=writer)
    with pytest.raises(ContentError) as exc:
        services.article_approve(article=article, actor=reviewer)
    assert exc.value.code == "article.own_approval"
    third = staff_in_role("campaign_admin", "third")
    services.article_approve(article=article, actor=third)
    article.refresh_from_db()
    assert article.status == ArticleStatus.APPROVED and article.approved_by == third


def test_database_refuses_self_approval_whatever_the_code_path(writer, reviewer):
    article = make_article(writer)
    with pytest.raises(IntegrityError), transaction.atomic():
        Article.objects.filter(pk=article.pk).update(
            status=ArticleStatus.APPROVED, approved_by=writer, approved_at=timezone.now()
        )


def test_database_refuses_published_without_approval(writer):
    article = make_article(writer)
    with pytest.raises(IntegrityError), transaction.atomic():
        Article.objects.filter(pk=article.pk).update(
            status=ArticleStatus.PUBLISHED, published_at=timezone.now()
        )


def test_transitions_outside_the_table_are_refused(writer, reviewer):
    article = make_article(writer)
    with pytest.raises(InvalidTransition):
        services.article_publish(article=article, actor=reviewer)  # draft → published
    services.article_submit(article=article, actor=writer)
    with pytest.raises(InvalidTransition):
        services.article_publish(article=article, actor=reviewer)  # unapproved
    article.refresh_from_db()
    assert article.status == ArticleStatus.IN_REVIEW


def test_only_drafts_are_edited_and_return_voids_the_approval(writer, reviewer):
    article = make_article(writer)
    services.article_submit(article=article, actor=writer)
    services.article_approve(article=article, actor=reviewer)
    with pytest.raises(ContentError) as exc:
        services.article_update(article=article, actor=writer, title="改标题")
    assert exc.value.code == "article.not_editable"
    services.article_return_to_draft(article=article, actor=reviewer, reason="数字需核对")
    article.refresh_from_db()
    assert article.status == ArticleStatus.DRAFT
    assert article.approved_by is None and article.approved_at is None
    services.article_update(article=article, actor=writer, title="改标题")
    article.refresh_from_db()
    assert article.title == "改标题"


def test_staff_without_the_permissions_are_refused(writer, outsider):
    with pytest.raises(ContentError) as exc:
        make_article(outsider)
    assert exc.value.code == "article.not_permitted"
    article = make_article(writer)
    services.article_submit(article=article, actor=writer)
    with pytest.raises(ContentError) as exc:
        services.article_approve(article=article, actor=outsider)
    assert exc.value.status_code == 403


def test_scheduled_publishing_by_the_beat_task(writer, reviewer, time_machine):
    from apps.content.tasks import articles_publish_due_task

    now = timezone.now()
    time_machine.move_to(now, tick=False)
    article = make_article(writer)
    services.article_submit(article=article, actor=writer)
    services.article_approve(article=article, actor=reviewer)
    with pytest.raises(ContentError) as exc:
        services.article_schedule(
            article=article, publish_at=now - timedelta(minutes=1), actor=reviewer
        )
    assert exc.value.code == "article.schedule_in_past"
    when = now + timedelta(hours=2)
    services.article_schedule(article=article, publish_at=when, actor=reviewer)
    assert articles_publish_due_task.delay().get() == 0
    article.refresh_from_db()
    assert article.status == ArticleStatus.SCHEDULED

    time_machine.move_to(when + timedelta(seconds=30), tick=False)
    assert articles_publish_due_task.delay().get() == 1
    article.refresh_from_db()
    assert article.status == ArticleStatus.PUBLISHED
    assert article.published_at == when + timedelta(seconds=30)
    assert article.history.last().actor is None  # the system, on schedule
    assert articles_publish_due_task.delay().get() == 0  # once


def test_schedule_is_declared_for_beat():
    from apps.common.schedules import SCHEDULES

    names = {s.task for s in SCHEDULES}
    assert "apps.content.tasks.articles_publish_due" in names


def test_published_article_is_public_then_archived_is_gone(client, writer, reviewer):
    article = publish(make_article(writer), writer, reviewer)
    url = f"/info/articles/{article.public_id}/"
    assert client.get(url).status_code == 200
    services.article_archive(article=article, actor=reviewer, reason="过期")
    assert client.get(url).status_code == 404
