"""When a deployment's runs are due, and the ids a firing gets.

One home for the schedule rules, because three places apply them: ``@schedule`` checks
its arguments when the flow is defined, ``deploy`` prints the next firing, and the
service fires the due times (``orchestration/schedules.py``) and backfills ranges. A due
time is named by its deployment and its instant alone, so every service replica, and a
backfill of the same instant, derives the same event id and run id: the ledger's
idempotent append lets one of them start the run.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, tzinfo

from ledgerflow.v1 import records_pb2

# croniter and zoneinfo are imported where a schedule is read, not here: every flow
# imports this module (for @schedule), and croniter alone took ~15 ms of a flow's start
# (it runs `file` on the interpreter to learn its word size).

# The shortcuts of @schedule, as cron expressions (midnight and Sunday, as cron's own
# @hourly, @daily and @weekly are).
SHORTCUTS = {"hourly": "0 * * * *", "daily": "0 0 * * *", "weekly": "0 0 * * 0"}
# How far ahead a schedule must fire at least once ("0 0 31 2 *" never does).
_HORIZON_YEARS = 5
# Event ids of firings live in a namespace of their own.
_FIRING_NAMESPACE = uuid.UUID("6f1b7a52-2b1c-4d35-9a55-61d8a3f0c2e1")


class ScheduleError(ValueError):
    """A schedule that cannot fire: a bad cron, an unknown time zone, a cron that never
    comes due, or a choice of more than one of hourly/daily/weekly/cron."""


def schedule_message(
    *,
    hourly: bool = False,
    daily: bool = False,
    weekly: bool = False,
    cron: str | None = None,
    timezone: str | None = None,
    catchup: bool = False,
) -> records_pb2.Schedule:
    """@schedule's arguments as a checked Schedule message."""
    chosen = [name for name, on in (("hourly", hourly), ("daily", daily), ("weekly", weekly)) if on]
    if cron is not None:
        chosen.append("cron")
    if len(chosen) != 1:
        raise ScheduleError(
            "@schedule takes exactly one of hourly=True, daily=True, weekly=True or "
            f"cron='MIN HOUR DAY MONTH WEEKDAY' (got {', '.join(chosen) or 'none'})"
        )
    expression = cron if cron is not None else SHORTCUTS[chosen[0]]
    schedule = records_pb2.Schedule(
        cron=" ".join(expression.split()), timezone=timezone or "", catchup=catchup
    )
    check_schedule(schedule)
    return schedule


def zone(schedule: records_pb2.Schedule) -> tzinfo:
    if not schedule.timezone:
        return UTC
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(schedule.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleError(
            f"unknown time zone {schedule.timezone[:64]!r}: use an IANA name such as "
            "'Europe/Helsinki' or 'America/New_York' (empty: UTC)"
        ) from None


def check_cron_fields(schedule: records_pb2.Schedule) -> None:
    """Raises ScheduleError unless the cron has cron's five fields."""
    fields = schedule.cron.split()
    if len(fields) != 5:
        raise ScheduleError(
            f"cron {schedule.cron[:100]!r} has {len(fields)} fields: give five, "
            "'MINUTE HOUR DAY-OF-MONTH MONTH DAY-OF-WEEK' (e.g. '0 3 * * *' for 03:00 daily)"
        )


def check_schedule(schedule: records_pb2.Schedule) -> None:
    """Raises ScheduleError unless the schedule parses and comes due within a few years."""
    from croniter import CroniterBadCronError, CroniterBadDateError, croniter

    check_cron_fields(schedule)
    tz = zone(schedule)
    now = datetime.now(tz)
    try:
        first = croniter(schedule.cron, now).get_next(datetime)
    except CroniterBadDateError:  # a ValueError too: before the clause below
        first = None
    except (CroniterBadCronError, ValueError, KeyError) as error:
        raise ScheduleError(f"cron {schedule.cron[:100]!r} does not parse: {error}") from None
    if first is None or first - now > timedelta(days=366 * _HORIZON_YEARS):
        raise ScheduleError(
            f"cron {schedule.cron[:100]!r} never comes due (no such date in the next "
            f"{_HORIZON_YEARS} years)"
        )


def _instant(us: int, schedule: records_pb2.Schedule) -> datetime:
    return datetime.fromtimestamp(us / 1e6, UTC).astimezone(zone(schedule))


def _us(moment: datetime) -> int:
    return int(moment.timestamp()) * 1_000_000


def _repeats_wall_time(schedule: records_pb2.Schedule) -> bool:
    """Whether a local time that happens twice (when the clocks go back) is due once:
    yes for a schedule at set hours ("30 1 * * *" runs once that night, as cron runs
    it), no for one every hour ("0 * * * *" runs each real hour)."""
    return schedule.cron.split()[1] != "*"


def _walk(schedule: records_pb2.Schedule, start: datetime) -> Iterator[datetime]:
    """The due times strictly after `start`, earliest first, a repeated local time
    only once for a schedule at set hours."""
    from croniter import CroniterBadDateError, croniter

    found = croniter(schedule.cron, start)
    once = _repeats_wall_time(schedule)
    previous = start.replace(tzinfo=None)
    while True:
        try:
            due = found.get_next(datetime)
        except CroniterBadDateError:
            return
        wall = due.replace(tzinfo=None)
        if once and wall == previous:
            continue
        previous = wall
        yield due


def next_due(schedule: records_pb2.Schedule, after_us: int) -> int | None:
    """The first due time strictly after `after_us` (µs since the epoch), or None if
    there is none."""
    return next((_us(due) for due in _walk(schedule, _instant(after_us, schedule))), None)


def due_times(schedule: records_pb2.Schedule, since_us: int, until_us: int) -> Iterator[int]:
    """The due times in [since_us, until_us], earliest first."""
    # croniter starts strictly after its start: begin just before `since_us`.
    for moment in _walk(schedule, _instant(since_us, schedule) - timedelta(seconds=1)):
        due = _us(moment)
        if due > until_us:
            return
        if due >= since_us:
            yield due


def latest_due(schedule: records_pb2.Schedule, since_us: int, until_us: int) -> int | None:
    """The newest due time in [since_us, until_us], found without walking the range
    (a minute schedule after a month's outage is 43,200 due times). None when there is
    none, or when croniter's backward search misses it, as it can in the hour a time
    zone's clocks go back (the caller falls back on a due time it knows)."""
    from croniter import CroniterBadDateError, croniter

    # croniter's get_prev is strictly before its start: start just after `until_us`.
    start = _instant(until_us, schedule) + timedelta(microseconds=1)
    try:
        due: int | None = _us(croniter(schedule.cron, start).get_prev(datetime))
    except CroniterBadDateError:
        due = None
    return due if due is not None and since_us <= due <= until_us else None


def firing_ids(deployment: str, due_us: int) -> tuple[str, str]:
    """(event id, run id) of the run a deployment's due time starts: the same for its
    schedule and a backfill, in every service replica."""
    import hashlib  # here: it loads OpenSSL (~3 ms), which a flow's start does not need

    event_id = str(uuid.uuid5(_FIRING_NAMESPACE, f"{deployment}@{due_us}"))
    stamp = datetime.fromtimestamp(due_us / 1e6, UTC).strftime("%Y%m%dT%H%M%SZ")
    suffix = hashlib.blake2b(deployment.encode(), digest_size=4).hexdigest()
    return event_id, f"{stamp}-{suffix}"


def triggered_run_id(deployment: str, event_id: str, prefix: str = "manual") -> str:
    """The run id of a run a trigger starts, derived from the event id of its cause (a
    retried trigger, or the same cause folded again, names the same run): "manual-…"
    for someone's trigger, "event-…" for a published event, "after-…" for an upstream
    run's success."""
    import hashlib  # (see firing_ids)

    digest = hashlib.blake2b(f"{deployment}:{event_id}".encode(), digest_size=6).hexdigest()
    return f"{prefix}-{digest}"
