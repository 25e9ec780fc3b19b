"""Working-time arithmetic: weekends, the 2026 public holidays and make-up workdays (调休),
lunch breaks, and the ends of working periods."""

from __future__ import annotations

from datetime import date, time

import pytest

from apps.complaints.calendar import CalendarError, WorkCalendar, load_calendar
from apps.complaints.demo import HOLIDAYS_2026

from .conftest import SHANGHAI, at

CAL_2026 = WorkCalendar(days={d: w for d, w, _note in HOLIDAYS_2026}, tz=SHANGHAI)


def test_weekdays_work_weekends_do_not_unless_the_calendar_says_so():
    assert CAL_2026.is_workday(date(2026, 3, 2))  # Monday
    assert not CAL_2026.is_workday(date(2026, 3, 7))  # Saturday
    assert not CAL_2026.is_workday(date(2026, 1, 2))  # Friday, New Year holiday
    assert CAL_2026.is_workday(date(2026, 1, 4))  # Sunday, make-up workday
    assert CAL_2026.is_workday(date(2026, 2, 14)) and CAL_2026.is_workday(date(2026, 2, 28))
    assert not any(CAL_2026.is_workday(date(2026, 10, d)) for d in range(1, 8))
    assert CAL_2026.is_workday(date(2026, 9, 20)) and CAL_2026.is_workday(date(2026, 10, 10))


def test_hours_run_over_a_weekend():
    # Friday 16:00 + 4 working hours: 1 h on Friday, 3 h on Monday.
    assert CAL_2026.add_hours(at(2026, 3, 6, 16), 4) == at(2026, 3, 9, 12)


def test_hours_skip_a_holiday_and_the_weekend_after_it():
    # Thursday 24 Sep 16:00: 1 h; Friday 25 is 中秋节, then the weekend; Monday 28 from 09:00.
    assert CAL_2026.add_hours(at(2026, 9, 24, 16), 4) == at(2026, 9, 28, 12)


def test_a_make_up_sunday_is_worked():
    # Saturday 19 Sep is off, Sunday 20 Sep is a make-up workday (国庆节调休).
    assert CAL_2026.add_hours(at(2026, 9, 19, 10), 4) == at(2026, 9, 20, 13)


def test_days_across_the_spring_festival():
    # Friday 13 Feb 15:00 + 2 working days (16 h): 2 h Friday, 8 h on the make-up Saturday
    # 14 Feb, then nothing until Tuesday 24 Feb (15–23 Feb off), 6 h → 15:00.
    assert CAL_2026.add_days(at(2026, 2, 13, 15), 2) == at(2026, 2, 24, 15)


def test_national_day_week_and_its_make_up_days():
    # Wednesday 30 Sep 10:00 + 3 working days (24 h): 7 h on the 30th, 1–7 Oct off,
    # Thursday 8 and Friday 9 Oct (16 h), then the make-up Saturday 10 Oct 09:00–10:00.
    assert CAL_2026.add_days(at(2026, 9, 30, 10), 3) == at(2026, 10, 10, 10)


def test_outside_working_hours_the_clock_starts_at_the_next_period():
    assert CAL_2026.add_hours(at(2026, 3, 6, 20), 1) == at(2026, 3, 9, 10)
    assert CAL_2026.add_hours(at(2026, 3, 9, 7), 1) == at(2026, 3, 9, 10)
    assert CAL_2026.next_working_moment(at(2026, 3, 7, 12)) == at(2026, 3, 9, 9)


def test_a_due_time_at_the_end_of_the_day_stays_there():
    assert CAL_2026.add_hours(at(2026, 3, 9, 9), 8) == at(2026, 3, 9, 17)
    assert CAL_2026.add_days(at(2026, 3, 9, 9), 1) == at(2026, 3, 9, 17)


def test_lunch_break_does_not_count():
    cal = WorkCalendar(break_start=time(12), break_end=time(13), tz=SHANGHAI)
    assert cal.seconds_per_day == 7 * 3600
    assert cal.add_hours(at(2026, 3, 9, 11), 2) == at(2026, 3, 9, 14)
    assert cal.add_hours(at(2026, 3, 9, 12, 30), 1) == at(2026, 3, 9, 14)


def test_working_time_between_two_moments():
    assert CAL_2026.between(at(2026, 3, 6, 16), at(2026, 3, 9, 12)) == 4 * 3600
    assert CAL_2026.between(at(2026, 9, 30, 10), at(2026, 10, 8, 10)) == 8 * 3600
    assert CAL_2026.between(at(2026, 3, 9, 12), at(2026, 3, 9, 11)) == 0


def test_adding_what_between_measured_gives_back_the_end():
    start, end = at(2026, 2, 12, 10, 15), at(2026, 3, 3, 14, 40)
    assert CAL_2026.add(start, CAL_2026.between(start, end)) == end


class _AllOff(dict):
    def get(self, key, default=None):
        return False


def test_a_calendar_without_working_days_fails_loudly():
    with pytest.raises(CalendarError):
        WorkCalendar(days=_AllOff(), tz=SHANGHAI).add_hours(at(2026, 3, 9, 9), 1)


def test_invalid_hours_are_refused():
    with pytest.raises(CalendarError):
        WorkCalendar(start=time(17), end=time(9))
    with pytest.raises(CalendarError):
        WorkCalendar(break_start=time(8), break_end=time(10))


@pytest.mark.django_db
def test_the_admin_calendar_and_hours_are_what_services_use(calendar_2026, desk_settings):
    desk_settings.break_start, desk_settings.break_end = time(12), time(13)
    desk_settings.save()
    cal = load_calendar(around=at(2026, 9, 1))
    assert cal.is_workday(date(2026, 9, 20)) and not cal.is_workday(date(2026, 9, 25))
    assert cal.seconds_per_day == 7 * 3600
