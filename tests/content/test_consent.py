"""Winner stories: only with the winner's recorded consent to the exact text, masked names
unless the consent covers the full name, and a withdrawal unpublishes at once."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.content import services
from apps.content.choices import ArticleKind, ArticleStatus, ConsentScope
from apps.content.exceptions import ContentError
from apps.content.models import WinnerConsent

from .conftest import WINNER, make_article, make_story, publish

pytestmark = pytest.mark.django_db


def test_story_without_consent_cannot_be_approved(writer, reviewer):
    story = make_article(writer, kind=ArticleKind.WINNER_STORY, title="中奖故事")
    services.article_submit(article=story, actor=writer)
    with pytest.raises(ContentError) as exc:
        services.article_approve(article=story, actor=reviewer)
    assert exc.value.code == "story.consent_missing"


def test_consent_is_bound_to_the_text(writer, reviewer):
    story, consent = make_story(writer, reviewer, go_live=False)
    assert consent.text_digest == story.digest
    assert "抽中了300元" in consent.text_snapshot
    services.article_update(article=story, actor=writer, body="<p>改过的故事，多写了几句。</p>")
    services.article_submit(article=story, actor=writer)
    with pytest.raises(ContentError) as exc:
        services.article_approve(article=story, actor=reviewer)
    assert exc.value.code == "story.consent_text_changed"


def test_name_is_masked_unless_full_name_consented(client, writer, reviewer):
    story, _consent = make_story(writer, reviewer)
    page = client.get(f"/info/articles/{story.public_id}/").content.decode()
    assert "王*国" in page and WINNER not in page
    api = client.get(f"/api/v1/articles/{story.public_id}/").json()
    assert api["winner_name"] == "王*国"


def test_full_name_shown_only_with_full_name_consent(client, writer, reviewer):
    story, _ = make_story(
        writer, reviewer, scope=ConsentScope.FULL_NAME, body=f"<p>{WINNER}先生抽中了800元。</p>"
    )
    assert client.get(f"/api/v1/articles/{story.public_id}/").json()["winner_name"] == WINNER


def test_full_name_in_text_needs_full_name_consent(writer, reviewer):
    story, _ = make_story(writer, reviewer, body=f"<p>{WINNER}先生抽中了800元。</p>", go_live=False)
    services.article_submit(article=story, actor=writer)
    with pytest.raises(ContentError) as exc:
        services.article_approve(article=story, actor=reviewer)
    assert exc.value.code == "story.full_name_not_consented"


def test_withdrawal_unpublishes_at_once(client, writer, reviewer):
    story, consent = make_story(writer, reviewer)
    url, api = f"/info/articles/{story.public_id}/", f"/api/v1/articles/{story.public_id}/"
    assert client.get(url).status_code == 200
    listed = client.get("/api/v1/articles/?kind=winner_story").json()
    assert [a["id"] for a in listed["results"]] == [str(story.public_id)]

    services.consent_withdraw(consent=consent, actor=reviewer, note="本人电话撤回同意")

    story.refresh_from_db()
    assert story.status == ArticleStatus.ARCHIVED
    assert client.get(url).status_code == 404
    assert client.get(api).status_code == 404
    assert client.get("/api/v1/articles/?kind=winner_story").json()["count"] == 0
    assert str(story.public_id) not in client.get("/info/").content.decode()
    actions = set(
        AuditEvent.objects.filter(target_id=str(story.pk)).values_list("action", flat=True)
    )
    assert {"winner_consent.withdrawn", "article.archived_consent_withdrawn"} <= actions
    with pytest.raises(ContentError):
        services.consent_withdraw(consent=consent, actor=reviewer, note="again")


def test_withdrawn_scheduled_story_is_not_published_later(writer, reviewer):
    from datetime import timedelta

    story, consent = make_story(writer, reviewer, go_live=False)
    services.article_submit(article=story, actor=writer)
    services.article_approve(article=story, actor=reviewer)
    services.article_schedule(
        article=story, publish_at=timezone.now() + timedelta(minutes=5), actor=reviewer
    )
    services.consent_withdraw(consent=consent, actor=reviewer, note="撤回")
    assert services.articles_publish_due(now=timezone.now() + timedelta(hours=1)) == 0
    story.refresh_from_db()
    assert story.status == ArticleStatus.ARCHIVED


def test_public_list_hides_a_story_whose_consent_vanished_by_other_means(client, writer, reviewer):
    """Defence in depth: even if a row were changed outside the service, the selector needs a
    valid consent."""
    story, consent = make_story(writer, reviewer)
    WinnerConsent.objects.filter(pk=consent.pk).update(withdrawn_at=timezone.now())
    assert client.get(f"/info/articles/{story.public_id}/").status_code == 404


def test_one_valid_consent_per_story(writer, reviewer):
    story, _consent = make_story(writer, reviewer, go_live=False)
    with pytest.raises(ContentError) as exc:
        services.consent_record(
            article=story,
            winner_name="李四",
            scope=ConsentScope.FULL_NAME,
            consented_at=timezone.now(),
            evidence="x",
            actor=reviewer,
        )
    assert exc.value.code == "story.consent_exists"
    with pytest.raises(IntegrityError), transaction.atomic():
        WinnerConsent.objects.create(
            article=story,
            winner_name="李四",
            consented_at=timezone.now(),
            evidence="x",
            text_digest=story.digest,
            text_snapshot="x",
            recorded_by=reviewer,
        )


def test_consent_name_is_encrypted_at_rest(writer, reviewer):
    from django.db import connection

    _story, consent = make_story(writer, reviewer, go_live=False)
    with connection.cursor() as cur:
        cur.execute("SELECT winner_name FROM content_winnerconsent WHERE id = %s", [consent.pk])
        raw = cur.fetchone()[0]
    assert WINNER not in raw


def test_consent_only_for_winner_stories(writer, reviewer):
    article = publish(make_article(writer), writer, reviewer)
    with pytest.raises(ContentError) as exc:
        services.consent_record(
            article=article,
            winner_name="李四",
            scope="masked_name",
            consented_at=timezone.now(),
            evidence="x",
            actor=reviewer,
        )
    assert exc.value.code == "story.not_a_winner_story"
