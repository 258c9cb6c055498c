"""AWS cron expressions, the six fields Application Auto Scaling takes in `cron(...)`:
minutes, hours, day of month, month, day of week (1 = Sunday) and year.

Fields take `*`, `,`, `-`, `/`, names (`JAN`, `MON`), and for days `?`, `L`, `W` (day of
month) and `L`, `#` (day of week); exactly one of the two day fields must be `?`, as on AWS.
No installed library parses this dialect (standard cron counts weekdays from 0 and has no
year), so it is parsed here.
"""

from __future__ import annotations

import calendar
import datetime as dt
from dataclasses import dataclass, field

MONTHS = {name.upper(): i for i, name in enumerate(calendar.month_abbr) if name}
WEEKDAYS = {"SUN": 1, "MON": 2, "TUE": 3, "WED": 4, "THU": 5, "FRI": 6, "SAT": 7}
YEARS = (1970, 2199)


class CronError(ValueError):
    """An expression AWS would refuse; the message says which field and why."""


@dataclass(frozen=True)
class Days:
    """What one of the day fields asks for."""

    any: bool = False
    values: frozenset[int] = frozenset()
    last: bool = False  # L in day of month: the month's last day
    nearest_weekday: frozenset[int] = frozenset()  # 15W
    last_weekday_of_month: bool = False  # LW
    last_of: frozenset[int] = frozenset()  # 6L in day of week: the month's last Friday
    nth: frozenset[tuple[int, int]] = field(default_factory=frozenset)  # 2#1: first Monday


@dataclass(frozen=True)
class Cron:
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    day_of_month: Days
    months: frozenset[int]
    day_of_week: Days
    years: frozenset[int]

    def matches_day(self, day: dt.date) -> bool:
        if day.month not in self.months or day.year not in self.years:
            return False
        if self.day_of_month.any:
            return _weekday_matches(self.day_of_week, day)
        return _month_day_matches(self.day_of_month, day)

    def next_after(self, after: dt.datetime) -> dt.datetime | None:
        """The first matching minute strictly after `after` (an aware datetime, in the zone the
        expression is read in), or None when no year left in the expression has one."""
        tz = after.tzinfo
        day = after.date()
        last_year = max(self.years)
        while day.year <= last_year:
            if day.year not in self.years:
                day = dt.date(day.year + 1, 1, 1)
                continue
            if day.month not in self.months:
                day = _first_of_next_month(day)
                continue
            if self.matches_day(day):
                for hour in self.hours:
                    for minute in self.minutes:
                        moment = dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=tz)
                        if moment.timestamp() > after.timestamp():
                            return moment
            day += dt.timedelta(days=1)
        return None


def parse(expression: str) -> Cron:
    fields = expression.split()
    if len(fields) != 6:
        raise CronError(
            f"A cron expression has 6 fields (minutes hours day-of-month month day-of-week "
            f"year); '{expression}' has {len(fields)}."
        )
    minute, hour, dom, month, dow, year = (f.upper() for f in fields)
    if (dom == "?") == (dow == "?"):
        raise CronError(
            "Exactly one of the day-of-month and day-of-week fields must be '?' in cron "
            f"expression '{expression}'."
        )
    return Cron(
        minutes=tuple(sorted(_values(minute, 0, 59, {}, "minutes"))),
        hours=tuple(sorted(_values(hour, 0, 23, {}, "hours"))),
        day_of_month=_month_days(dom),
        months=frozenset(_values(month, 1, 12, MONTHS, "month")),
        day_of_week=_week_days(dow),
        years=frozenset(_values(year, *YEARS, {}, "year")),
    )


def _values(text: str, low: int, high: int, names: dict[str, int], what: str) -> set[int]:
    found: set[int] = set()
    for item in text.split(","):
        base, slash, step_text = item.partition("/")
        step = _number(step_text, 1, high - low + 1 if high > low else 1, what) if slash else 1
        if base == "*":
            start, end = low, high
        elif "-" in base:
            first, _, last = base.partition("-")
            start, end = _value(first, low, high, names, what), _value(last, low, high, names, what)
            if start > end:
                raise CronError(f"Range '{base}' in the {what} field runs backwards.")
        else:
            start = _value(base, low, high, names, what)
            end = high if step_text else start
        found.update(range(start, end + 1, step))
    return found


def _value(text: str, low: int, high: int, names: dict[str, int], what: str) -> int:
    if text in names:
        return names[text]
    return _number(text, low, high, what)


def _number(text: str, low: int, high: int, what: str) -> int:
    if not text.isdigit() or not low <= int(text) <= high:
        raise CronError(f"'{text}' is not valid in the {what} field (allowed: {low}-{high}).")
    return int(text)


def _month_days(text: str) -> Days:
    if text == "?":
        return Days(any=True)
    if text == "L":
        return Days(last=True)
    if text == "LW":
        return Days(last_weekday_of_month=True)
    if text.endswith("W"):
        return Days(nearest_weekday=frozenset({_number(text[:-1], 1, 31, "day-of-month")}))
    return Days(values=frozenset(_values(text, 1, 31, {}, "day-of-month")))


def _week_days(text: str) -> Days:
    if text == "?":
        return Days(any=True)
    if "#" in text:
        day, _, nth = text.partition("#")
        weekday = _value(day, 1, 7, WEEKDAYS, "day-of-week")
        return Days(nth=frozenset({(weekday, _number(nth, 1, 5, "day-of-week"))}))
    if text.endswith("L") and len(text) > 1:
        return Days(last_of=frozenset({_value(text[:-1], 1, 7, WEEKDAYS, "day-of-week")}))
    if text == "L":
        return Days(last_of=frozenset({7}))
    return Days(values=frozenset(_values(text, 1, 7, WEEKDAYS, "day-of-week")))


def _aws_weekday(day: dt.date) -> int:
    return day.isoweekday() % 7 + 1  # Sunday 1 ... Saturday 7


def _month_day_matches(days: Days, day: dt.date) -> bool:
    last = calendar.monthrange(day.year, day.month)[1]
    if days.last:
        return day.day == last
    if days.last_weekday_of_month:
        return day == _nearest_weekday(dt.date(day.year, day.month, last))
    if days.nearest_weekday:
        wanted = min(next(iter(days.nearest_weekday)), last)
        return day == _nearest_weekday(dt.date(day.year, day.month, wanted))
    return day.day in days.values


def _weekday_matches(days: Days, day: dt.date) -> bool:
    weekday = _aws_weekday(day)
    if days.nth:
        return (weekday, (day.day - 1) // 7 + 1) in days.nth
    if days.last_of:
        last = calendar.monthrange(day.year, day.month)[1]
        return weekday in days.last_of and day.day + 7 > last
    return weekday in days.values


def _nearest_weekday(day: dt.date) -> dt.date:
    """The weekday nearest `day` within its month (a Saturday moves to Friday, or to Monday
    when Friday is in the previous month; a Sunday to Monday, or back to Friday)."""
    last = calendar.monthrange(day.year, day.month)[1]
    if day.isoweekday() == 6:
        return day - dt.timedelta(days=1) if day.day > 1 else day + dt.timedelta(days=2)
    if day.isoweekday() == 7:
        return day + dt.timedelta(days=1) if day.day < last else day - dt.timedelta(days=2)
    return day


def _first_of_next_month(day: dt.date) -> dt.date:
    if day.month == 12:
        return dt.date(day.year + 1, 1, 1)
    return dt.date(day.year, day.month + 1, 1)
