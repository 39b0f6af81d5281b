"""The deployments command line's own rules: what a backfill's dates mean, and how a
triggered run's parameter values are read (the end-to-end tests are in
tests/executor/test_deployments.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import click
import pytest
from ledgerflow.cli.deployments import _json_value, _range_end

HELSINKI = ZoneInfo("Europe/Helsinki")


def test_a_date_is_that_whole_day_in_the_schedules_time_zone() -> None:
    start = _range_end("2026-12-02", "--from", HELSINKI, end=False)
    end = _range_end("2026-12-02", "--to", HELSINKI, end=True)
    # Helsinki is UTC+2 in December: its 2nd runs from 22:00 UTC on the 1st.
    assert start.astimezone(UTC) == datetime(2026, 12, 1, 22, tzinfo=UTC)
    assert end.astimezone(UTC) == datetime(2026, 12, 2, 21, 59, 59, 999999, tzinfo=UTC)
    # A time is taken as given (UTC without an offset).
    assert _range_end("2026-12-02T03:00", "--to", HELSINKI, end=True) == datetime(
        2026, 12, 2, 3, tzinfo=UTC
    )
    with pytest.raises(click.BadParameter, match="not a date"):
        _range_end("2026-13-02", "--from", HELSINKI, end=False)


def test_a_triggered_value_is_of_the_deployed_values_kind() -> None:
    assert _json_value("label", "007", '"x"') == '"007"'  # text stays text
    assert _json_value("alpha", "0.5", "1") == "0.5"
    assert _json_value("flags", '["a"]', '["b"]') == '["a"]'
    assert _json_value("new", "abc", None) == '"abc"'
    for name, text, deployed in [("alpha", "abc", "1"), ("alpha", "true", "1"),
                                 ("flags", "1", '["b"]'), ("on", "1", "true")]:  # fmt: skip
        with pytest.raises(click.BadParameter, match="not of the kind of the deployed value"):
            _json_value(name, text, deployed)
