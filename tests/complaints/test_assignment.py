"""Assignment: round-robin among the available handlers of a queue (also under concurrency),
manual reassignment by supervisors only, taking a case."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
import time_machine
from django.db import connection

from apps.complaints import services
from apps.complaints.choices import CaseChannel, CaseKind, CaseStatus
from apps.complaints.exceptions import CaseError
from apps.complaints.models import Case, CaseQueueMembership

from .conftest import at

pytestmark = pytest.mark.django_db


def test_round_robin_skips_handlers_who_are_away(open_case, handlers, supervisor):
    CaseQueueMembership.objects.filter(user=handlers[2]).update(available=False)
    assignees = [open_case().assignee for _ in range(6)]
    assert assignees == [handlers[0], handlers[1]] * 3  # supervisor is away, handler3 too


def test_round_robin_rotates_even_when_the_clock_stands_still(open_case, handlers):
    with time_machine.travel(at(2026, 3, 9, 10), tick=False):
        assignees = [open_case().assignee for _ in range(7)]
    assert assignees == [*handlers, *handlers, handlers[0]]


def test_a_handler_who_comes_back_is_dealt_next(open_case, handlers):
    CaseQueueMembership.objects.filter(user=handlers[2]).update(available=False)
    for _ in range(4):
        open_case()
    membership = CaseQueueMembership.objects.get(user=handlers[2])
    services.membership_set_available(membership=membership, available=True, actor=handlers[2])
    assert open_case().assignee == handlers[2]


def test_nobody_available_leaves_the_case_new_in_the_queue(open_case, handlers):
    CaseQueueMembership.objects.update(available=False)
    case = open_case()
    assert case.status == CaseStatus.NEW and case.assignee is None


def test_only_a_supervisor_reassigns(open_case, handlers, supervisor):
    case = open_case()
    with pytest.raises(CaseError) as refused:
        services.case_assign(case=case, actor=handlers[1], assignee=handlers[1])
    assert refused.value.code == "case.not_permitted"
    services.case_assign(case=case, actor=supervisor, assignee=handlers[2], reason="熟悉该商户")
    case.refresh_from_db()
    assert case.assignee == handlers[2] and case.status == CaseStatus.ASSIGNED
    # Round-robin on request: the next available member.
    services.case_assign(case=case, actor=supervisor)
    case.refresh_from_db()
    assert case.assignee != handlers[2]


def test_reassigning_to_someone_outside_the_queue_is_refused(
    open_case, handlers, supervisor, outsider
):
    case = open_case()
    with pytest.raises(CaseError) as refused:
        services.case_assign(case=case, actor=supervisor, assignee=outsider)
    assert refused.value.code == "case.assignee_not_member"


def test_taking_an_unassigned_case_and_not_someone_elses(open_case, handlers, supervisor):
    CaseQueueMembership.objects.update(available=False)
    case = open_case()
    services.case_take(case=case, actor=handlers[1])
    case.refresh_from_db()
    assert case.assignee == handlers[1] and case.status == CaseStatus.IN_PROGRESS
    other = open_case()
    services.case_assign(case=other, actor=supervisor, assignee=handlers[0])
    with pytest.raises(CaseError) as refused:
        services.case_take(case=other, actor=handlers[1])
    assert refused.value.code == "case.not_permitted"
    services.case_take(case=other, actor=supervisor)  # a supervisor may take it over
    other.refresh_from_db()
    assert other.assignee == supervisor


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_twenty_cases_opened_at_once_are_spread_evenly_and_none_is_lost(
    category, consumer, handlers, roles
):
    from tests.accounts.helpers import make_staff

    fourth = make_staff("handler4")
    fourth.groups.add(*handlers[0].groups.all())
    CaseQueueMembership.objects.create(queue=category.queue, user=fourth)
    barrier = threading.Barrier(20)
    errors, references = [], []

    def file_one(n):
        try:
            barrier.wait(timeout=30)
            case = services.case_open(
                kind=CaseKind.COMPLAINT,
                category=category,
                subject=f"并发 {n}",
                channel=CaseChannel.API,
                consumer=consumer,
            )
            references.append(case.reference)
        except Exception as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=file_one, args=(n,)) for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert len(set(references)) == 20
    cases = Case.objects.filter(subject__startswith="并发")
    assert cases.count() == 20
    assert all(c.status == CaseStatus.ASSIGNED for c in cases)
    per_handler = Counter(cases.values_list("assignee_id", flat=True))
    assert sorted(per_handler.values()) == [5, 5, 5, 5]
    numbers = sorted(int(r.split("-")[1]) for r in references)
    assert numbers == list(range(numbers[0], numbers[0] + 20))  # gapless
