"""The schedule rules of ledgerflow.engine: due times in a time zone (clock changes
included), the ids a due time's run gets, @schedule's checks, and what current says."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from ledgerflow.engine.deployments import identity_problem
from ledgerflow.engine.facts import trigger_facts
from ledgerflow.engine.schedules import (
    ScheduleError,
    due_times,
    firing_ids,
    latest_due,
    next_due,
    schedule_message,
)
from ledgerflow.v1 import events_pb2, records_pb2


def us(*when: int) -> int:
    return int(datetime(*when, tzinfo=UTC).timestamp() * 1_000_000)  # type: ignore[misc]


def hours(values: list[int]) -> list[str]:
    return [datetime.fromtimestamp(v / 1e6, UTC).strftime("%m-%d %H:%M") for v in values]


def test_a_daily_schedule_in_a_time_zone_fires_at_its_local_time() -> None:
    schedule = schedule_message(cron="0 3 * * *", timezone="Europe/Helsinki")
    # 03:00 in Helsinki is 01:00 UTC in winter (EET) and 00:00 UTC in summer (EEST); on
    # 2026-03-29 the clocks jump from 03:00 to 04:00, so that day's run is at 04:00 local.
    assert hours(list(due_times(schedule, us(2026, 3, 27), us(2026, 3, 31)))) == [
        "03-27 01:00", "03-28 01:00", "03-29 01:00", "03-30 00:00", "03-31 00:00",
    ]  # fmt: skip
    assert next_due(schedule, us(2026, 12, 6, 1)) == us(2026, 12, 7, 1)


def test_a_local_time_that_happens_twice_fires_once_but_every_hour_fires_each_hour() -> None:
    # New York's clocks go back at 02:00 on 2026-11-01: 01:30 happens at 05:30 and 06:30 UTC.
    nightly = schedule_message(cron="30 1 * * *", timezone="America/New_York")
    assert hours(list(due_times(nightly, us(2026, 10, 31), us(2026, 11, 3)))) == [
        "10-31 05:30", "11-01 05:30", "11-02 06:30",
    ]  # fmt: skip
    assert next_due(nightly, us(2026, 11, 1, 5, 30)) == us(2026, 11, 2, 6, 30)
    # Helsinki's clocks go back at 04:00 on 2026-10-25: an hourly schedule runs each hour.
    hourly = schedule_message(hourly=True, timezone="Europe/Helsinki")
    assert hours(list(due_times(hourly, us(2026, 10, 24, 23), us(2026, 10, 25, 3)))) == [
        "10-24 23:00", "10-25 00:00", "10-25 01:00", "10-25 02:00", "10-25 03:00",
    ]  # fmt: skip


def test_the_latest_due_time_of_a_long_outage_is_found_without_walking_it() -> None:
    minutely = schedule_message(cron="* * * * *")
    assert latest_due(minutely, us(2026, 11, 1), us(2026, 12, 1, 0, 0, 30)) == us(2026, 12, 1)
    assert latest_due(minutely, us(2026, 12, 1, 0, 0, 10), us(2026, 12, 1, 0, 0, 50)) is None


def test_a_due_time_has_the_same_ids_everywhere_and_different_ones_per_deployment() -> None:
    due = us(2026, 12, 6, 1)
    assert firing_ids("pricing.prod.PricingFlow", due) == firing_ids(
        "pricing.prod.PricingFlow", due
    )
    event_id, run_id = firing_ids("pricing.prod.PricingFlow", due)
    assert run_id.startswith("20261206T010000Z-")
    other = firing_ids("pricing.user.alice.PricingFlow", due)
    assert other[0] != event_id and other[1] != run_id


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({}, "exactly one of"),
        ({"daily": True, "hourly": True}, "exactly one of"),
        ({"cron": "0 3 * *"}, "has 4 fields"),
        ({"cron": "0 3 * * * *"}, "has 6 fields"),
        ({"cron": "0 25 * * *"}, "does not parse"),
        ({"cron": "0 0 31 2 *"}, "never comes due"),
        ({"daily": True, "timezone": "Europe/Atlantis"}, "unknown time zone"),
    ],
)
def test_bad_schedules_say_what_is_wrong(arguments: dict[str, object], message: str) -> None:
    with pytest.raises(ScheduleError, match=message):
        schedule_message(**arguments)  # type: ignore[arg-type]


def test_a_decorated_schedule_is_one_choice() -> None:
    from ledgerflow import schedule

    class Flow:
        pass

    schedule(hourly=True)(Flow)
    assert Flow._ledgerflow_schedule.cron == "0 * * * *"  # type: ignore[attr-defined]
    schedule(Flow)
    assert Flow._ledgerflow_schedule.cron == "0 0 * * *"  # type: ignore[attr-defined]
    schedule(daily=True, hourly=True)(Flow)
    assert isinstance(Flow._ledgerflow_schedule, ScheduleError)  # type: ignore[attr-defined]


def test_current_trigger_gives_the_due_time_in_the_schedules_zone() -> None:
    trigger = records_pb2.Trigger(deployment="D", deployment_version=2,
                                  kind=records_pb2.TRIGGER_KIND_SCHEDULE,
                                  timezone="Europe/Helsinki")  # fmt: skip
    trigger.scheduled_at.FromMicroseconds(us(2026, 11, 30, 22))  # local midnight
    facts = trigger_facts(trigger)
    assert facts is not None and facts["kind"] == "schedule"
    assert datetime.fromisoformat(facts["scheduled_at"]).date().isoformat() == "2026-12-01"
    assert trigger_facts(None) is None


def test_a_deployments_name_follows_its_project_and_branch() -> None:
    ok = events_pb2.DeploymentCreated(name="pricing.prod.F", flow_name="F", project="pricing",
                                      branch="prod", production=True)  # fmt: skip
    assert identity_problem(ok) is None
    assert identity_problem(events_pb2.DeploymentCreated(name="F", flow_name="F")) is None
    for bad in [
        events_pb2.DeploymentCreated(
            name="pricing.prod.F",
            flow_name="F",
            project="pricing",
            branch="user.bob",
            production=False,
        ),
        events_pb2.DeploymentCreated(
            name="pricing.test.x.F",
            flow_name="F",
            project="pricing",
            branch="test.x",
            production=True,
        ),
        events_pb2.DeploymentCreated(name="G", flow_name="F"),
        events_pb2.DeploymentCreated(name="F", flow_name="F", branch="prod"),
    ]:
        assert identity_problem(bad) is not None
