"""The public pages: server-rendered Chinese HTML with semantic headings, no scripts, and
conditional GET."""

from __future__ import annotations

import re

import pytest

from apps.content.choices import ArticleKind

from .conftest import make_article, publish

pytestmark = pytest.mark.django_db


def test_home_lists_each_kind_with_headings(client, writer, reviewer):
    policy = publish(make_article(writer), writer, reviewer)
    response = client.get("/info/")
    assert response.status_code == 200
    html = response.content.decode()
    assert '<html lang="zh-hans">' in html
    assert len(re.findall(r"<h1[ >]", html)) == 1
    for kind in ArticleKind:
        assert f'<h2 id="section-{kind.value}">{kind.label}</h2>' in html
    assert policy.title in html
    assert "<script" not in html
    assert response["Cache-Control"] == "public, max-age=0, must-revalidate"
    assert client.get("/info/", HTTP_IF_NONE_MATCH=response["ETag"]).status_code == 304


def test_article_page_renders_sanitised_body_under_one_h1(client, writer, reviewer):
    article = publish(
        make_article(writer, body='<h1>小标题</h1><p onclick="x">正文</p>'), writer, reviewer
    )
    html = client.get(f"/info/articles/{article.public_id}/").content.decode()
    assert html.count("<h1>") == 1 and "<h2>小标题</h2>" in html and "<p>正文</p>" in html
    assert "onclick" not in html and "<script" not in html


def test_kind_pages(client, writer, reviewer):
    publish(make_article(writer, kind=ArticleKind.GUIDE, title="如何上传发票"), writer, reviewer)
    assert "如何上传发票" in client.get("/info/articles/kind/guide/").content.decode()
    assert "如何上传发票" not in client.get("/info/articles/kind/notice/").content.decode()
    assert client.get("/info/articles/kind/bogus/").status_code == 404
    assert "如何上传发票" in client.get("/info/articles/").content.decode()


def test_a_row_written_around_the_service_is_cleaned_on_the_way_out(client, writer, reviewer):
    from apps.content.models import Article

    article = publish(make_article(writer), writer, reviewer)
    Article.objects.filter(pk=article.pk).update(body='<p>ok</p><img src=x onerror="alert(1)">')
    html = client.get(f"/info/articles/{article.public_id}/").content.decode()
    api = client.get(f"/api/v1/articles/{article.public_id}/").json()
    assert "onerror" not in html and "<p>ok</p>" in html
    assert api["body"] == "<p>ok</p>"
