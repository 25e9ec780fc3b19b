"""Fixtures for publicity: staff of the campaign administrator role (writer, reviewer,
publisher), a fresh media directory, and ready-made articles in each status."""

from __future__ import annotations

import io
import itertools

import pytest
from django.contrib.auth.models import Group
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from apps.accounts.roles import ROLES_BY_CODE, sync_roles
from apps.content import services
from apps.content.choices import ArticleKind, ConsentScope
from tests.accounts.helpers import make_staff

_names = itertools.count(1)
WINNER = "王建国"


def staff_in_role(role: str, username: str | None = None):
    user = make_staff(username or f"{role}-{next(_names)}")
    user.groups.add(Group.objects.get(name=ROLES_BY_CODE[role].group_name))
    return type(user).objects.get(pk=user.pk)  # fresh permission cache


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture
def roles(db):
    sync_roles()


@pytest.fixture
def writer(roles):
    return staff_in_role("campaign_admin", "writer")


@pytest.fixture
def reviewer(roles):
    return staff_in_role("campaign_admin", "reviewer")


@pytest.fixture
def outsider(roles):
    return staff_in_role("invoice_reviewer", "outsider")


def png_bytes(size=(40, 30), color=(200, 30, 30), mode="RGB", fmt="PNG", **save) -> bytes:
    out = io.BytesIO()
    Image.new(mode, size, color).save(out, format=fmt, **save)
    return out.getvalue()


def upload(data: bytes, name="photo.png", content_type="image/png") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type=content_type)


def make_article(writer, *, kind=ArticleKind.POLICY, title="发票抽奖政策解读", body=None, **kw):
    return services.article_create(
        kind=kind,
        title=title,
        summary=kw.get("summary", "一文读懂有奖发票活动规则。"),
        body=body if body is not None else "<h2>参与条件</h2><p>在郑州市消费并取得数电普票。</p>",
        actor=writer,
    )


def publish(article, writer, reviewer):
    services.article_submit(article=article, actor=writer)
    services.article_approve(article=article, actor=reviewer)
    return services.article_publish(article=article, actor=reviewer)


@pytest.fixture
def published_policy(writer, reviewer):
    return publish(make_article(writer), writer, reviewer)


def make_story(writer, reviewer, *, scope=ConsentScope.MASKED_NAME, body=None, go_live=True):
    from django.utils import timezone

    story = make_article(
        writer,
        kind=ArticleKind.WINNER_STORY,
        title="买菜也能中奖：一位退休教师的故事",
        body=body or "<p>王先生在超市买菜后上传发票，抽中了300元。</p>",
    )
    consent = services.consent_record(
        article=story,
        winner_name=WINNER,
        scope=scope,
        consented_at=timezone.now(),
        evidence="同意书 2026-001",
        actor=reviewer,
    )
    if go_live:
        story = publish(story, writer, reviewer)
    return story, consent
