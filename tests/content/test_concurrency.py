"""Two beat sweeps at the same moment publish a scheduled article once; two reviewers
approving at once make one transition."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from apps.common.exceptions import DomainError
from apps.content import services
from apps.content.choices import ArticleStatus
from apps.content.models import ArticleStatusChange

from .conftest import make_article, staff_in_role

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def _run_together(functions):
    barrier = threading.Barrier(len(functions))
    results, errors = [], []

    def worker(fn):
        try:
            barrier.wait()
            results.append(fn())
        except Exception as exc:  # collected for the assertions
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(fn,)) for fn in functions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return results, errors


def test_concurrent_sweeps_publish_once(roles):
    writer = staff_in_role("campaign_admin", "w")
    reviewer = staff_in_role("campaign_admin", "r")
    article = make_article(writer)
    services.article_submit(article=article, actor=writer)
    services.article_approve(article=article, actor=reviewer)
    services.article_schedule(
        article=article, publish_at=timezone.now() + timedelta(minutes=1), actor=reviewer
    )
    later = timezone.now() + timedelta(minutes=2)
    results, errors = _run_together([lambda: services.articles_publish_due(now=later)] * 4)
    assert not errors, errors
    assert sorted(results) == [0, 0, 0, 1]
    article.refresh_from_db()
    assert article.status == ArticleStatus.PUBLISHED
    assert ArticleStatusChange.objects.filter(article=article, to_status="published").count() == 1


def test_concurrent_approvals_make_one_transition(roles):
    writer = staff_in_role("campaign_admin", "w2")
    reviewers = [staff_in_role("campaign_admin", f"r{n}") for n in range(3)]
    article = make_article(writer)
    services.article_submit(article=article, actor=writer)
    results, errors = _run_together(
        [lambda r=r: services.article_approve(article=article, actor=r) for r in reviewers]
    )
    assert len(results) == 1 and len(errors) == 2
    assert all(isinstance(e, DomainError) for e in errors)
    assert ArticleStatusChange.objects.filter(article=article, to_status="approved").count() == 1
