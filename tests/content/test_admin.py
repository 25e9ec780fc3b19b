"""The back office of publicity: articles edited through the service (sanitised), status
changes only through actions that call services, images and consents added through services."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from apps.content.choices import ArticleKind, ArticleStatus
from apps.content.exceptions import ContentError
from apps.content.models import Article, ArticleImage, WinnerConsent
from tests.accounts.helpers import sign_in_staff

from .conftest import make_article, make_story, png_bytes, publish, staff_in_role, upload

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:content_article_changelist")


def action(client, name, objects, **data):
    return client.post(
        CHANGELIST,
        {"action": name, "_selected_action": [o.pk for o in objects], **data},
        follow=True,
    )


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def test_add_form_sanitises_through_the_service(client, writer):
    sign_in_staff(client, writer)
    response = client.post(
        reverse("admin:content_article_add"),
        {
            "kind": ArticleKind.NOTICE,
            "title": "关于开奖时间调整的通知",
            "summary": "",
            "body": '<p onclick="steal()">第二期开奖改为12月16日。</p><script>x()</script>',
        },
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    article = Article.objects.get(title="关于开奖时间调整的通知")
    assert article.body == "<p>第二期开奖改为12月16日。</p>"
    assert article.author == writer and article.status == ArticleStatus.DRAFT
    assert article.history.count() == 1


def test_workflow_through_admin_actions(client, writer, reviewer):
    article = make_article(writer)
    sign_in_staff(client, writer)
    action(client, "submit_selected", [article])
    article.refresh_from_db()
    assert article.status == ArticleStatus.IN_REVIEW

    refused = action(client, "approve_selected", [article])
    expected = str(ContentError("article.own_approval").message)
    assert any(expected in m for m in messages_of(refused)), messages_of(refused)
    article.refresh_from_db()
    assert article.status == ArticleStatus.IN_REVIEW

    client.logout()
    sign_in_staff(client, reviewer)
    action(client, "approve_selected", [article])
    article.refresh_from_db()
    assert article.status == ArticleStatus.APPROVED and article.approved_by == reviewer

    form = action(client, "schedule_selected", [article])
    assert b'name="publish_at"' in form.content
    when = timezone.localtime(timezone.now() + timedelta(days=1)).strftime("%Y-%m-%d %H:%M")
    action(client, "schedule_selected", [article], apply="1", publish_at=when)
    article.refresh_from_db()
    assert article.status == ArticleStatus.SCHEDULED

    action(client, "publish_selected", [article])
    article.refresh_from_db()
    assert article.status == ArticleStatus.PUBLISHED
    page = client.get(reverse("admin:content_article_change", args=[article.pk]))
    assert page.status_code == 200
    assert 'name="title"' not in page.content.decode()  # read-only once out of draft

    action(client, "archive_selected", [article], apply="1", reason="活动结束")
    article.refresh_from_db()
    assert article.status == ArticleStatus.ARCHIVED


def test_view_only_staff_see_no_actions_and_cannot_post_them(client, writer, roles):
    article = make_article(writer)
    auditor = staff_in_role("auditor")
    sign_in_staff(client, auditor)
    page = client.get(CHANGELIST)
    assert page.status_code == 200
    assert "approve_selected" not in page.content.decode()
    action(client, "submit_selected", [article])
    article.refresh_from_db()
    assert article.status == ArticleStatus.DRAFT


def test_image_upload_through_admin(client, writer):
    article = make_article(writer)
    sign_in_staff(client, writer)
    response = client.post(
        reverse("admin:content_articleimage_add"),
        {"article": article.pk, "alt_text": "活动海报", "upload": upload(png_bytes())},
    )
    assert response.status_code == 302
    image = ArticleImage.objects.get(article=article)
    assert image.content_type == "image/jpeg"
    bad = client.post(
        reverse("admin:content_articleimage_add"),
        {"article": article.pk, "alt_text": "x", "upload": upload(b"<svg/>", "x.svg")},
    )
    assert bad.status_code == 200 and ArticleImage.objects.count() == 1


def test_consent_recorded_and_withdrawn_through_admin(client, writer, reviewer):
    story, _ = make_story(writer, reviewer, go_live=False)
    WinnerConsent.objects.all().delete()
    sign_in_staff(client, reviewer)
    response = client.post(
        reverse("admin:content_winnerconsent_add"),
        {
            "article": story.pk,
            "name": "王建国",
            "scope": "masked_name",
            "consented_at_0": timezone.localdate().isoformat(),
            "consented_at_1": "10:00:00",
            "evidence": "同意书 2026-009",
        },
    )
    assert response.status_code == 302, response.content[:3000]
    consent = WinnerConsent.objects.get(article=story)
    assert consent.winner_name == "王建国" and consent.text_digest == story.digest
    listing = client.get(reverse("admin:content_winnerconsent_changelist")).content.decode()
    assert "王*国" in listing and "王建国" not in listing

    publish(story, writer, reviewer)
    client.post(
        reverse("admin:content_winnerconsent_changelist"),
        {
            "action": "withdraw_selected",
            "_selected_action": [consent.pk],
            "apply": "1",
            "reason": "本人撤回",
        },
    )
    story.refresh_from_db()
    assert story.status == ArticleStatus.ARCHIVED
