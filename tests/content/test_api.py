"""The consumer API of published articles: list, detail, by kind, paginated, cache headers."""

from __future__ import annotations

import pytest

from apps.content import services
from apps.content.choices import ArticleKind

from .conftest import make_article, publish

pytestmark = pytest.mark.django_db


@pytest.fixture
def catalogue(writer, reviewer):
    items = {}
    for n, kind in enumerate([ArticleKind.POLICY, ArticleKind.GUIDE, ArticleKind.NOTICE] * 2):
        items.setdefault(kind, []).append(
            publish(make_article(writer, kind=kind, title=f"{kind.label} {n}"), writer, reviewer)
        )
    make_article(writer, title="还在起草的草稿")  # never listed
    return items


def test_list_is_public_paginated_and_newest_first(client, catalogue):
    response = client.get("/api/v1/articles/?page_size=4")
    assert response.status_code == 200
    data = response.json()
    assert data["count"] == 6 and len(data["results"]) == 4 and data["next"]
    dates = [a["published_at"] for a in data["results"]]
    assert dates == sorted(dates, reverse=True)
    assert "body" not in data["results"][0]
    assert all("草稿" not in a["title"] for a in data["results"])
    assert client.get("/api/v1/articles/?page_size=100000").status_code == 200


def test_by_kind_path_and_filter(client, catalogue):
    by_path = client.get("/api/v1/articles/kind/guide/").json()
    by_param = client.get("/api/v1/articles/?kind=guide").json()
    assert by_path == by_param
    assert by_path["count"] == 2
    assert {a["kind"] for a in by_path["results"]} == {"guide"}
    assert client.get("/api/v1/articles/kind/nonsense/").status_code == 404


def test_detail_has_sanitised_body_and_images(client, catalogue):
    article = catalogue[ArticleKind.POLICY][0]
    data = client.get(f"/api/v1/articles/{article.public_id}/").json()
    assert data["body"].startswith("<h2>参与条件</h2>")
    assert data["kind_label"] and data["images"] == [] and data["winner_name"] == ""
    assert data["page_url"] == f"/info/articles/{article.public_id}/"


def test_unpublished_article_is_a_404(client, writer):
    draft = make_article(writer)
    assert client.get(f"/api/v1/articles/{draft.public_id}/").status_code == 404


def test_cache_headers_and_conditional_requests(client, catalogue, reviewer):
    article = catalogue[ArticleKind.POLICY][0]
    url = f"/api/v1/articles/{article.public_id}/"
    first = client.get(url)
    assert first["Cache-Control"] == "public, max-age=0, must-revalidate"
    etag, last_modified = first["ETag"], first["Last-Modified"]
    assert etag.startswith('"') and last_modified.endswith("GMT")
    again = client.get(url, HTTP_IF_NONE_MATCH=etag)
    assert again.status_code == 304 and again["ETag"] == etag and not again.content
    assert client.get(url, HTTP_IF_MODIFIED_SINCE=last_modified).status_code == 304
    assert client.get(url, HTTP_IF_NONE_MATCH='"other"').status_code == 200

    listing = client.get("/api/v1/articles/")
    list_etag = listing["ETag"]
    assert client.get("/api/v1/articles/", HTTP_IF_NONE_MATCH=list_etag).status_code == 304
    services.article_archive(article=article, actor=reviewer, reason="更新")
    changed = client.get("/api/v1/articles/", HTTP_IF_NONE_MATCH=list_etag)
    assert changed.status_code == 200 and changed["ETag"] != list_etag


def test_schema_lists_the_public_endpoints(client):
    schema = client.get("/api/schema/").content.decode()
    assert "/api/v1/articles/" in schema and "/api/v1/merchants/lookup/" in schema
