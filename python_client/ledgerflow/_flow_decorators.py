"""Flow decorators: ``@schedule`` and ``@project`` go on the FlowSpec class, as in
Metaflow. They are read by ``deploy`` (when a deployment fires, and under which name)
and by ``run`` (a project's runs are tagged with its branch)."""

from __future__ import annotations

from typing import Any, TypeVar

from ledgerflow.engine.projects import ProjectError, check_project
from ledgerflow.engine.schedules import ScheduleError, schedule_message
from ledgerflow.v1 import records_pb2

C = TypeVar("C", bound=type)
_SCHEDULE = "_ledgerflow_schedule"
_PROJECT = "_ledgerflow_project"


def schedule(
    cls: Any = None,
    *,
    hourly: bool = False,
    daily: bool | None = None,
    weekly: bool = False,
    cron: str | None = None,
    timezone: str | None = None,
    catchup: bool = False,
) -> Any:
    """When a deployment of the flow runs: ``@schedule(daily=True)`` (the default, at
    midnight), ``hourly=True``, ``weekly=True`` (Sunday midnight) or ``cron='0 3 * * *'``,
    read in `timezone` (an IANA name; default UTC). A due time missed while the service
    was down runs once when it returns; ``catchup=True`` runs each one missed. It takes
    effect when the flow is deployed (``python flow.py deploy``), not on ``run``."""
    if daily is None:  # the default, unless another choice is made
        daily = not (hourly or weekly or cron is not None)
    try:
        message: records_pb2.Schedule | ScheduleError = schedule_message(
            hourly=hourly, daily=daily, weekly=weekly, cron=cron, timezone=timezone,
            catchup=catchup,
        )  # fmt: skip
    except ScheduleError as error:
        # Kept for the flow's command line to report (`Error: ...`, no traceback).
        message = error

    def attach(flow_class: C) -> C:
        setattr(flow_class, _SCHEDULE, message)
        return flow_class

    return attach(cls) if cls is not None else attach


def project(cls: Any = None, *, name: str | None = None) -> Any:
    """Puts the flow in a project: its runs and deployments belong to a branch
    (``user.NAME`` by default, ``test.B`` with ``--branch B``, ``prod`` with
    ``--production``) and its deployment is named ``NAME.BRANCH.FlowName``, so one
    person's version never touches another's or production's. NAME: 1-64 lowercase
    letters, digits and '_'."""
    found: str | ProjectError
    try:
        if name is None:
            raise ProjectError("@project needs a name: @project(name='pricing')")
        found = check_project(name)
    except ProjectError as error:
        found = error  # kept for the flow's command line to report, without a traceback

    def attach(flow_class: C) -> C:
        setattr(flow_class, _PROJECT, found)
        return flow_class

    return attach(cls) if cls is not None else attach


def flow_schedule(flow_class: type) -> records_pb2.Schedule | None:
    """The flow's @schedule (None: it has none); ScheduleError for a bad one."""
    found = getattr(flow_class, _SCHEDULE, None)
    if isinstance(found, ScheduleError):
        raise found
    return found if isinstance(found, records_pb2.Schedule) else None


def flow_project(flow_class: type) -> str | None:
    """The flow's @project name (None: it has none); ProjectError for a bad one."""
    found = getattr(flow_class, _PROJECT, None)
    if isinstance(found, ProjectError):
        raise found
    return found if isinstance(found, str) else None
