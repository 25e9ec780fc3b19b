"""The publicity demo of `seed_demo`: one published article of each kind, idempotent."""

from __future__ import annotations

import pytest

from apps.content.choices import ArticleKind, ArticleStatus
from apps.content.demo import seed_content_demo
from apps.content.models import Article

pytestmark = pytest.mark.django_db


def test_demo_publishes_each_kind_once(roles, client):
    assert seed_content_demo() == 4
    assert seed_content_demo() == 0
    published = Article.objects.filter(status=ArticleStatus.PUBLISHED)
    assert sorted(published.values_list("kind", flat=True)) == sorted(ArticleKind.values)
    story = published.get(kind=ArticleKind.WINNER_STORY)
    assert story.author != story.approved_by
    html = client.get(f"/info/articles/{story.public_id}/").content.decode()
    assert "王*国" in html and "王建国" not in html
    image = story.images.get()
    assert client.get(image.path).status_code == 200
