"""The SLA sweep (`cases_check_sla`, run by Celery beat): warnings before a clock runs out,
escalation to the supervisors when it has, auto-close after the reopen window — each once."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
import time_machine

from apps.complaints import services
from apps.complaints.choices import CaseEvent, CaseOutcome, CaseStatus
from apps.complaints.models import Case
from apps.complaints.tasks import cases_check_sla_task

from .conftest import at

pytestmark = pytest.mark.django_db


def sweep(moment):
    with time_machine.travel(moment, tick=False):
        return services.cases_check_sla()


def count(case, event):
    return case.history.filter(event=event).count()


def test_warning_then_escalation_across_a_make_up_weekend(
    open_case, handlers, supervisor, calendar_2026, mailoutbox, django_capture_on_commit_callbacks
):
    # Friday 18 Sep 16:00: 4 working hours = 1 h on Friday + 3 h on the make-up Sunday 20 Sep.
    with time_machine.travel(at(2026, 9, 18, 16), tick=False):
        case = open_case()
    assert case.first_response_due == at(2026, 9, 20, 12)
    # Saturday evening: nothing is due within 2 working hours (Saturday is off).
    with django_capture_on_commit_callbacks(execute=True):
        assert sweep(at(2026, 9, 19, 20))["first_response_warned"] == 0
    # Sunday 10:30: due at 12:00, inside the 2-hour warning period.
    with django_capture_on_commit_callbacks(execute=True):
        first = sweep(at(2026, 9, 20, 10, 30))
        again = sweep(at(2026, 9, 20, 10, 45))
    assert first["first_response_warned"] == 1 and again["first_response_warned"] == 0
    assert [m.to for m in mailoutbox] == [[case.assignee.email]]
    assert case.reference in mailoutbox[0].subject
    # 12:01: breached → escalated to the supervisor, once however often the sweep runs.
    with django_capture_on_commit_callbacks(execute=True):
        breach = sweep(at(2026, 9, 20, 12, 1))
        sweep(at(2026, 9, 20, 12, 6))
        sweep(at(2026, 9, 21, 9))
    assert breach["first_response_breached"] == 1 and breach["escalated"] == 1
    case.refresh_from_db()
    assert case.escalated and case.escalation_reason == "sla.first_response_breached"
    assert case.first_response_breached_at == at(2026, 9, 20, 12, 1)
    assert count(case, CaseEvent.SLA_WARNING) == 1
    assert count(case, CaseEvent.SLA_BREACHED) == 1
    assert count(case, CaseEvent.ESCALATED) == 1
    assert [m.to for m in mailoutbox[1:]] == [[supervisor.email]]
    assert case.reference in mailoutbox[1].subject and case.reference in mailoutbox[1].body


def test_no_warning_over_a_holiday_until_the_clock_runs_again(open_case, handlers, calendar_2026):
    # Wednesday 30 Sep 15:30: 1.5 h today, the rest after the National Day week.
    with time_machine.travel(at(2026, 9, 30, 15, 30), tick=False):
        case = open_case()
    assert case.first_response_due == at(2026, 10, 8, 11, 30)
    for day in range(1, 8):
        assert sweep(at(2026, 10, day, 10))["first_response_warned"] == 0
    assert sweep(at(2026, 10, 8, 9, 45))["first_response_warned"] == 1


def test_answered_cases_are_not_warned_and_paused_clocks_do_not_breach(
    open_case, handlers, calendar_2026
):
    with time_machine.travel(at(2026, 3, 9, 10), tick=False):
        answered = open_case()
        waiting = open_case()
        services.case_reply(case=answered, actor=answered.assignee, body="已收到")
        services.case_reply(
            case=waiting, actor=waiting.assignee, body="请补充", await_consumer=True
        )
    result = sweep(at(2026, 3, 20, 10))  # long after every due time
    assert result["first_response_breached"] == 0
    assert result["resolution_breached"] == 1  # `answered` only; `waiting` is paused
    assert Case.objects.get(pk=waiting.pk).resolution_breached_at is None
    assert Case.objects.get(pk=answered.pk).escalated


def test_resolved_cases_close_once_the_reopen_window_has_passed(open_case, handlers):
    with time_machine.travel(at(2026, 3, 9, 10), tick=False):
        case = open_case()
        services.case_resolve(case=case, actor=case.assignee, outcome=CaseOutcome.ANSWERED)
    assert sweep(at(2026, 3, 15, 10))["closed"] == 0
    assert sweep(at(2026, 3, 16, 10, 1))["closed"] == 1
    assert sweep(at(2026, 3, 16, 10, 2))["closed"] == 0
    case.refresh_from_db()
    assert case.status == CaseStatus.CLOSED


def test_the_beat_task_runs_the_sweep(open_case, handlers, category):
    category.first_response_hours = Decimal("0")
    category.save()
    with time_machine.travel(at(2026, 3, 9, 10), tick=False):
        case = open_case()
    with time_machine.travel(at(2026, 3, 9, 10) + timedelta(minutes=1), tick=False):
        result = cases_check_sla_task.delay().get()
    assert result["first_response_breached"] == 1
    assert Case.objects.get(pk=case.pk).escalated


def test_the_schedule_is_declared():
    from apps.common.schedules import SCHEDULES

    entry = next(s for s in SCHEDULES if s.task == "apps.complaints.tasks.cases_check_sla")
    assert entry.minute == "*/5"
