"""When a scheduled action runs: its `Schedule` (`at(...)`, `rate(...)` or `cron(...)`), read in
its `Timezone` (UTC by default), bounded by `StartTime` and `EndTime` for recurring schedules.

Pure functions of the time they are asked about, so the autoscaler's loop and the tests (with a
clock of their own) get the same answers.
"""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from dataclasses import dataclass

from sabio.autoscaling import cron

RATE_UNITS = {"minute": 60, "minutes": 60, "hour": 3600, "hours": 3600, "day": 86400, "days": 86400}
_AT = re.compile(r"at\((\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})\)")
_RATE = re.compile(r"rate\((\d+) ([a-z]+)\)")
_CRON = re.compile(r"cron\((.*)\)")


class ScheduleError(ValueError):
    """A schedule or time zone AWS would refuse; the message is the ValidationException's."""


@dataclass(frozen=True)
class Schedule:
    expression: str
    zone: dt.tzinfo
    at: dt.datetime | None = None
    every: int | None = None  # seconds between runs of a rate expression
    cron: cron.Cron | None = None

    @property
    def recurring(self) -> bool:
        return self.at is None


def zone(name: str | None) -> dt.tzinfo:
    if not name:
        return dt.UTC
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ScheduleError(f"Time zone '{name}' is not a valid IANA time zone.") from None


def parse(expression: str, timezone: str | None = None) -> Schedule:
    tz = zone(timezone)
    text = expression.strip()
    if match := _AT.fullmatch(text):
        try:
            year, month, day, hour, minute, second = (int(g) for g in match.groups())
            moment = dt.datetime(year, month, day, hour, minute, second, tzinfo=tz)
        except ValueError:
            raise ScheduleError(f"'{expression}' is not a valid at expression.") from None
        return Schedule(expression, tz, at=moment)
    if match := _RATE.fullmatch(text):
        value, unit = int(match.group(1)), match.group(2)
        if value < 1 or unit not in RATE_UNITS:
            raise ScheduleError(
                f"'{expression}' is not a valid rate expression: the value must be a positive "
                "integer and the unit one of minute, minutes, hour, hours, day, days."
            )
        return Schedule(expression, tz, every=value * RATE_UNITS[unit])
    if match := _CRON.fullmatch(text):
        try:
            return Schedule(expression, tz, cron=cron.parse(match.group(1)))
        except cron.CronError as error:
            raise ScheduleError(str(error)) from None
    raise ScheduleError(
        f"Schedule '{expression}' is not an at(yyyy-mm-ddThh:mm:ss), rate(value unit) or "
        "cron(fields) expression."
    )


def next_run(
    schedule: Schedule,
    after: float,
    *,
    anchor: float,
    start: float | None = None,
    end: float | None = None,
) -> float | None:
    """The first time strictly after `after` that the action runs, as epoch seconds, or None
    when it will not run again. A rate counts its intervals from StartTime (which itself is a
    run) or, without one, from `anchor` (when the action was put)."""
    if schedule.at is not None:
        moment = schedule.at.timestamp()
        return moment if moment > after else None
    if start is not None and start > after:
        after = start - 1e-6
    found: float | None
    try:
        if schedule.every is not None:
            origin = start if start is not None else anchor + schedule.every
            if origin > after:
                found = origin
            else:
                found = origin + ((after - origin) // schedule.every + 1) * schedule.every
        else:
            assert schedule.cron is not None
            upcoming = schedule.cron.next_after(dt.datetime.fromtimestamp(after, schedule.zone))
            found = None if upcoming is None else upcoming.timestamp()
    except (OverflowError, OSError, ValueError):
        # A run past what a float or a date can hold (a rate of 10**400 days, a StartTime at
        # the end of year 9999 read in a zone east of UTC) never comes.
        found = None
    if found is None or (end is not None and found > end):
        return None
    return found
