"""The case workflow: new → assigned → in progress → awaiting consumer → resolved → closed,
reopen within the window, with a history row and an audit record per step."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine

from apps.audit.models import AuditEvent
from apps.common.exceptions import InvalidTransition
from apps.complaints import selectors, services
from apps.complaints.choices import (
    CaseChannel,
    CaseEvent,
    CaseKind,
    CaseOutcome,
    CaseStatus,
    MessageKind,
)
from apps.complaints.exceptions import CaseError
from apps.complaints.models import Case, CaseSettings
from tests.factories.core import MerchantFactory

from .conftest import at

pytestmark = pytest.mark.django_db


def events(case):
    return list(case.history.order_by("id").values_list("event", "from_status", "to_status"))


def test_a_handlers_day_from_opening_to_closing(open_case, handlers, calendar_2026):
    with time_machine.travel(at(2026, 3, 9, 10), tick=False):
        case = open_case()
    assert case.reference == "ZX2026-000001"
    assert case.status == CaseStatus.ASSIGNED and case.assignee == handlers[0]
    # Monday 10:00 + 4 working hours; + 2 working days.
    assert case.first_response_due == at(2026, 3, 9, 14)
    assert case.resolution_due == at(2026, 3, 11, 10)
    handler = case.assignee

    with time_machine.travel(at(2026, 3, 9, 11), tick=False):
        services.case_take(case=case, actor=handler)
        services.case_note(case=case, actor=handler, body="先电话联系商户")
        services.case_reply(case=case, actor=handler, body="请提供小票照片", await_consumer=True)
    case.refresh_from_db()
    assert case.status == CaseStatus.AWAITING_CONSUMER
    assert case.first_responded_at == at(2026, 3, 9, 11)
    assert case.paused_at == at(2026, 3, 9, 11)

    # The consumer answers the next day at 15:00: the clock had 1 d 7 h left (Mon 11:00 →
    # Wed 10:00), which now runs from Tue 15:00 → Thu 14:00.
    with time_machine.travel(at(2026, 3, 10, 15), tick=False):
        services.case_consumer_message(case=case, consumer=case.consumer, body="照片已上传")
    case.refresh_from_db()
    assert case.status == CaseStatus.IN_PROGRESS and case.paused_at is None
    assert case.resolution_due == at(2026, 3, 12, 14)

    with time_machine.travel(at(2026, 3, 11, 9), tick=False):
        services.case_resolve(
            case=case, actor=handler, outcome=CaseOutcome.SUBSTANTIATED, summary="已责令整改"
        )
    case.refresh_from_db()
    assert case.status == CaseStatus.RESOLVED and case.substantiated is True
    services.case_close(case=case, actor=handler)
    case.refresh_from_db()
    assert case.status == CaseStatus.CLOSED and case.closed_at is not None
    assert events(case) == [
        (CaseEvent.OPENED, "", "new"),
        (CaseEvent.ASSIGNED, "new", "assigned"),
        (CaseEvent.TAKEN, "assigned", "in_progress"),
        (CaseEvent.AWAITING, "in_progress", "awaiting_consumer"),
        (CaseEvent.CONSUMER_REPLIED, "awaiting_consumer", "in_progress"),
        (CaseEvent.RESOLVED, "in_progress", "resolved"),
        (CaseEvent.CLOSED, "resolved", "closed"),
    ]
    actions = list(
        AuditEvent.objects.filter(target_id=str(case.pk), target_type="complaints.case")
        .order_by("seq")
        .values_list("action", flat=True)
    )
    assert actions == [
        "case.opened",
        "case.assigned",
        "case.taken",
        "case.noted",
        "case.replied",
        "case.consumer_message",
        "case.resolved",
        "case.closed",
    ]


def test_references_count_up_per_year(open_case, handlers):
    with time_machine.travel(at(2026, 12, 31, 23, 59), tick=False):
        first, second = open_case(), open_case()
    with time_machine.travel(at(2027, 1, 1, 0, 1), tick=False):
        third = open_case()
    assert [first.reference, second.reference, third.reference] == [
        "ZX2026-000001",
        "ZX2026-000002",
        "ZX2027-000001",
    ]


def test_transitions_outside_the_table_are_refused(open_case, handlers):
    case = open_case()
    handler = case.assignee
    with pytest.raises(CaseError) as refused:
        services.case_close(case=case, actor=handler)
    assert refused.value.code == "case.not_resolved"
    services.case_resolve(case=case, actor=handler, outcome=CaseOutcome.ANSWERED)
    with pytest.raises(CaseError) as refused:
        services.case_reply(case=case, actor=handler, body="again")
    assert refused.value.code == "case.closed_for_messages"
    with pytest.raises(CaseError):
        services.case_resolve(case=case, actor=handler, outcome=CaseOutcome.ANSWERED)
    locked = Case.objects.get(pk=case.pk)
    from apps.complaints.services import _move

    with pytest.raises(InvalidTransition):
        _move(locked, CaseStatus.AWAITING_CONSUMER, event=CaseEvent.AWAITING)


def test_reopen_within_the_window_then_not_after(open_case, handlers):
    window = CaseSettings.load().reopen_window_days
    with time_machine.travel(at(2026, 3, 9, 10), tick=False):
        case = open_case()
        handler = case.assignee
        services.case_resolve(
            case=case, actor=handler, outcome=CaseOutcome.ANSWERED, summary="已答复"
        )
        services.case_rate(case=case, consumer=case.consumer, score=2, comment="不满意")
    with time_machine.travel(at(2026, 3, 9, 10) + timedelta(days=window - 1), tick=False):
        services.case_reopen(case=case, consumer=case.consumer, reason="问题没有解决")
    case.refresh_from_db()
    assert case.status == CaseStatus.ASSIGNED and case.assignee == handler
    assert case.reopened_count == 1 and case.rating is None and case.outcome == ""
    assert case.resolved_at is None
    with time_machine.travel(at(2026, 3, 18, 10), tick=False):
        services.case_resolve(case=case, actor=handler, outcome=CaseOutcome.ANSWERED)
    with (
        time_machine.travel(at(2026, 3, 18, 10) + timedelta(days=window, minutes=1), tick=False),
        pytest.raises(CaseError) as refused,
    ):
        services.case_reopen(case=case, consumer=case.consumer)
    assert refused.value.code == "case.reopen_window_passed"


def test_reopened_case_of_a_handler_who_left_goes_back_to_the_queue(open_case, handlers):
    case = open_case()
    handler = case.assignee
    services.case_resolve(case=case, actor=handler, outcome=CaseOutcome.ANSWERED)
    handler.case_queue_memberships.all().delete()
    services.case_reopen(case=case, actor=handlers[1])
    case.refresh_from_db()
    assert case.status == CaseStatus.ASSIGNED and case.assignee in handlers[1:]


def test_rating_only_after_resolution_and_only_once(open_case, handlers):
    case = open_case()
    with pytest.raises(CaseError) as refused:
        services.case_rate(case=case, consumer=case.consumer, score=5)
    assert refused.value.code == "case.not_resolved"
    services.case_resolve(case=case, actor=case.assignee, outcome=CaseOutcome.ANSWERED)
    for bad in (0, 6, True, "5"):
        with pytest.raises(CaseError):
            services.case_rate(case=case, consumer=case.consumer, score=bad)
    services.case_rate(case=case, consumer=case.consumer, score=5, comment="很快")
    with pytest.raises(CaseError) as refused:
        services.case_rate(case=case, consumer=case.consumer, score=4)
    assert refused.value.code == "case.already_rated"
    case.refresh_from_db()
    assert case.rating == 5 and case.history.filter(event=CaseEvent.RATED).count() == 1


def test_a_consultation_answered_by_a_faq_article(
    consultation_category, consumer, outsider, desk_settings
):
    from apps.complaints.models import FaqArticle

    article = FaqArticle.objects.create(
        slug="which", title="哪些发票可以参与？", body="数电普票……", is_published=True
    )
    draft = FaqArticle.objects.create(slug="draft", title="草稿", body="…")
    case = services.case_open(
        kind=CaseKind.CONSULTATION,
        subject="专票能参加吗",
        channel=CaseChannel.API,
        consumer=consumer,
    )
    assert case.category == consultation_category and case.assignee == outsider
    with pytest.raises(CaseError):
        services.case_reply(case=case, actor=outsider, article=draft)
    message = services.case_reply(case=case, actor=outsider, article=article)
    assert message.body == article.title and message.article == article
    services.case_resolve(case=case, actor=outsider, outcome=CaseOutcome.ANSWERED)


def test_escalation_by_a_handler_happens_once(open_case, handlers, supervisor, mailoutbox):
    case = open_case()
    services.case_escalate(case=case, actor=case.assignee, reason="涉及媒体")
    services.case_escalate(case=case, actor=case.assignee, reason="again")
    case.refresh_from_db()
    assert case.escalated and case.escalation_reason == "涉及媒体" and case.priority == 3
    assert case.history.filter(event=CaseEvent.ESCALATED).count() == 1


def test_substantiated_refusals_are_counted_per_merchant(refusal_category, consumer, handlers):
    merchant, other = MerchantFactory(), MerchantFactory()
    with time_machine.travel(at(2026, 3, 9, 10), tick=False):
        cases = [
            services.case_open(
                kind=CaseKind.MERCHANT_REFUSAL,
                subject="拒开发票",
                channel=CaseChannel.API,
                consumer=consumer,
                reported_merchant_name="某某饭店",
            )
            for _ in range(4)
        ]
        with pytest.raises(CaseError) as refused:
            services.case_resolve(
                case=cases[0], actor=cases[0].assignee, outcome=CaseOutcome.SUBSTANTIATED
            )
        assert refused.value.detail["field"] == "merchant"
        for case, target, outcome in (
            (cases[0], merchant, CaseOutcome.SUBSTANTIATED),
            (cases[1], merchant, CaseOutcome.SUBSTANTIATED),
            (cases[2], merchant, CaseOutcome.NOT_SUBSTANTIATED),
            (cases[3], other, CaseOutcome.SUBSTANTIATED),
        ):
            services.case_link(case=case, actor=case.assignee, merchant=target)
            services.case_resolve(case=case, actor=case.assignee, outcome=outcome)
    assert selectors.substantiated_refusals_by_merchant(at(2026, 3, 1)) == {
        merchant.pk: 2,
        other.pk: 1,
    }
    assert selectors.substantiated_refusals_by_merchant(at(2026, 3, 10)) == {}
    # A reopened refusal no longer counts until it is resolved again.
    with time_machine.travel(at(2026, 3, 10, 10), tick=False):
        services.case_reopen(case=cases[3], actor=cases[3].assignee)
    assert selectors.substantiated_refusals_by_merchant(at(2026, 3, 1)) == {merchant.pk: 2}


def test_internal_notes_are_never_in_the_public_thread(open_case, handlers):
    case = open_case()
    services.case_note(case=case, actor=case.assignee, body="内部：疑似恶意投诉")
    services.case_reply(case=case, actor=case.assignee, body="您好")
    services.case_consumer_message(case=case, consumer=case.consumer, body="谢谢")
    kinds = [m.kind for m in selectors.case_public_messages(case=case)]
    assert kinds == [MessageKind.PUBLIC_REPLY, MessageKind.CONSUMER_MESSAGE]
