"""Working time for SLA clocks: working hours, weekends, public holidays and make-up workdays.

Mainland China moves working days around its public holidays (调休): a holiday may run over
weekdays and a Saturday or Sunday may become a working day. A day is a working day when the
calendar says so (`WorkCalendarDay`), otherwise when it is Monday to Friday. Inside a working
day only the working hours count (e.g. 09:00–12:00 and 13:00–17:00 when a lunch break is set).

`WorkCalendar` is a plain value (no database access) so the arithmetic is easy to test;
`load_calendar()` builds it from the settings row and the calendar days.

SLA due times are fixed when a case is opened: editing the calendar later does not move the
due times of cases already open (their clocks were promised under the old calendar).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.utils import timezone

# No SLA reaches this far: a calendar without a single working day would loop forever.
MAX_DAYS_SCANNED = 3 * 366


class CalendarError(ValueError):
    """The calendar cannot answer (no working time found within `MAX_DAYS_SCANNED`)."""


@dataclass(frozen=True)
class WorkCalendar:
    """Working hours (`start`–`end`, minus an optional `break_start`–`break_end`) in `tz`, with
    per-date overrides: `days[d]` True = working day (also a weekend make-up day), False =
    holiday."""

    start: time = time(9, 0)
    end: time = time(17, 0)
    break_start: time | None = None
    break_end: time | None = None
    tz: ZoneInfo = field(default_factory=lambda: ZoneInfo("Asia/Shanghai"))
    days: Mapping[date, bool] = field(default_factory=dict)

    def __post_init__(self):
        if not self.start < self.end:
            raise CalendarError("working hours must start before they end")
        if (self.break_start is None) != (self.break_end is None):
            raise CalendarError("a break needs both a start and an end")
        if self.break_start is not None and not (
            self.start <= self.break_start < self.break_end <= self.end
        ):
            raise CalendarError("the break must lie inside the working hours")

    # --- days -----------------------------------------------------------------------------

    def is_workday(self, day: date) -> bool:
        override = self.days.get(day)
        if override is not None:
            return override
        return day.weekday() < 5

    def periods(self, day: date) -> list[tuple[datetime, datetime]]:
        """The working periods of `day` as aware datetimes (empty on a day off)."""
        if not self.is_workday(day):
            return []
        spans = (
            [(self.start, self.break_start), (self.break_end, self.end)]
            if self.break_start is not None
            else [(self.start, self.end)]
        )
        return [
            (
                datetime.combine(day, a, tzinfo=self.tz),
                datetime.combine(day, b, tzinfo=self.tz),
            )
            for a, b in spans
            if a < b
        ]

    @property
    def seconds_per_day(self) -> int:
        total = _seconds(self.start, self.end)
        if self.break_start is not None:
            total -= _seconds(self.break_start, self.break_end)
        return total

    # --- arithmetic -----------------------------------------------------------------------

    def add(self, moment: datetime, seconds: float) -> datetime:
        """The moment when `seconds` of working time have passed after `moment`.

        Starting outside working time counts from the next working period. A result that falls
        exactly on the end of a period stays there (17:00, not next morning's 09:00).
        """
        if seconds < 0:
            raise ValueError("seconds must not be negative")
        local = moment.astimezone(self.tz)
        remaining = timedelta(seconds=seconds)
        day = local.date()
        for _ in range(MAX_DAYS_SCANNED):
            for begin, finish in self.periods(day):
                if finish <= local:
                    continue
                begin = max(begin, local)
                available = finish - begin
                if remaining <= available:
                    return begin + remaining
                remaining -= available
            day += timedelta(days=1)
        raise CalendarError(f"no working time found within {MAX_DAYS_SCANNED} days")

    def add_hours(self, moment: datetime, hours: float) -> datetime:
        return self.add(moment, hours * 3600)

    def add_days(self, moment: datetime, days: float) -> datetime:
        """`days` working days: as many full working days' worth of working time."""
        return self.add(moment, days * self.seconds_per_day)

    def between(self, a: datetime, b: datetime) -> float:
        """Working seconds from `a` to `b` (0 when `b` is not after `a`)."""
        if b <= a:
            return 0.0
        a_local, b_local = a.astimezone(self.tz), b.astimezone(self.tz)
        total = timedelta()
        day = a_local.date()
        last = b_local.date()
        while day <= last:
            for begin, finish in self.periods(day):
                lo, hi = max(begin, a_local), min(finish, b_local)
                if hi > lo:
                    total += hi - lo
            day += timedelta(days=1)
        return total.total_seconds()

    def next_working_moment(self, moment: datetime) -> datetime:
        """`moment` itself when inside working time, else the start of the next period."""
        return self.add(moment, 0)


def _seconds(a: time, b: time) -> int:
    return (b.hour - a.hour) * 3600 + (b.minute - a.minute) * 60 + (b.second - a.second)


def load_calendar(*, around: datetime | None = None, config=None) -> WorkCalendar:
    """The calendar as configured in the admin (settings row and calendar days).

    Loads the overrides from a year before `around` (default now) to three years after — the
    furthest any SLA clock or warning horizon can reach.
    """
    from .models import CaseSettings, WorkCalendarDay

    config = config or CaseSettings.load()
    around = around or timezone.now()
    first = around.date() - timedelta(days=366)
    last = around.date() + timedelta(days=MAX_DAYS_SCANNED)
    days = dict(
        WorkCalendarDay.objects.filter(date__range=(first, last)).values_list("date", "is_workday")
    )
    return WorkCalendar(
        start=config.workday_start,
        end=config.workday_end,
        break_start=config.break_start,
        break_end=config.break_end,
        tz=ZoneInfo(config.timezone),
        days=days,
    )
