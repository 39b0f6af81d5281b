"""Flow decorators: ``@schedule``, ``@project``, ``@trigger``, ``@trigger_on_finish``
and ``@notify`` go on the FlowSpec class, as in Metaflow. They are read by ``deploy``
(when a deployment fires, under which name, and who hears of its runs) and by ``run``
(a project's runs are tagged with its branch)."""

from __future__ import annotations

from typing import Any, TypeVar

from ledgerflow._flow_config import deferrable
from ledgerflow.engine.projects import ProjectError, check_project
from ledgerflow.engine.schedules import ScheduleError, schedule_message
from ledgerflow.engine.triggers import TriggerError, check_event_name, notify_message
from ledgerflow.v1 import records_pb2

C = TypeVar("C", bound=type)
_SCHEDULE = "_ledgerflow_schedule"
_PROJECT = "_ledgerflow_project"
_TRIGGER_EVENTS = "_ledgerflow_trigger_events"
_TRIGGER_ON_FINISH = "_ledgerflow_trigger_on_finish"
_NOTIFY = "_ledgerflow_notify"


@deferrable
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


@deferrable
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


def _names(
    decorator: str, one: str | None, many: list[str] | tuple[str, ...] | None, what: str
) -> list[str]:
    """The names ``@decorator(what=...)`` or ``(whats=[...])`` was given."""
    if (one is None) == (many is None):
        raise TriggerError(f"{decorator} takes {what}='...' or {what}s=[...], exactly one")
    names = [one] if one is not None else list(many or [])
    if not names:
        raise TriggerError(f"{decorator}({what}s=[]) names no {what}")
    for name in names:
        if not isinstance(name, str):
            raise TriggerError(
                f"{decorator} takes the {what}'s name as text, not {type(name).__name__}"
            )
    return names


def _attach(cls: Any, attribute: str, found: Any, *, append: bool = False) -> Any:
    """Puts `found` (or the error that stopped it, for the command line to report
    without a traceback) on the flow class."""

    def attach(flow_class: C) -> C:
        if append:
            setattr(flow_class, attribute, [*flow_class.__dict__.get(attribute, []), found])
        else:
            setattr(flow_class, attribute, found)
        return flow_class

    return attach(cls) if cls is not None else attach


@deferrable
def trigger(cls: Any = None, *, event: str | None = None, events: list[str] | None = None) -> Any:
    """Starts a run of the deployed flow each time someone publishes the event
    (``ledgerflow events publish NAME`` or ``ledgerflow.publish_event(NAME, payload)``).
    The payload's fields named as a parameter set it for that run;
    ``current.trigger.event`` gives the event's name and payload."""
    found: list[str] | TriggerError
    try:
        found = [check_event_name(name) for name in _names("@trigger", event, events, "event")]
    except TriggerError as error:
        found = error
    return _attach(cls, _TRIGGER_EVENTS, found)


@deferrable
def trigger_on_finish(
    cls: Any = None, *, flow: str | None = None, flows: list[str] | None = None
) -> Any:
    """Starts a run of the deployed flow each time a run of the upstream flow's
    deployment succeeds (with @project: the upstream deployed on the same branch, or
    a deployment named in full, ``project.branch.Flow``). ``current.trigger.run`` is
    the upstream run."""
    found: list[str] | TriggerError
    try:
        found = _names("@trigger_on_finish", flow, flows, "flow")
    except TriggerError as error:
        found = error
    return _attach(cls, _TRIGGER_ON_FINISH, found)


@deferrable
def notify(
    cls: Any = None,
    *,
    on: list[str] | str = ("failure",),  # type: ignore[assignment]
    command: str | None = None,
    webhook: str | None = None,
) -> Any:
    """Tells someone when a run of the deployed flow ends (``on=['failure']`` by
    default, ``'success'`` too): the service POSTs the run's facts as JSON to
    `webhook`, or runs `command` (on a service that allows it), once per run, retried
    with backoff; ``ledgerflow audit`` shows each attempt. Stack several for several
    receivers."""
    found: records_pb2.Notify | TriggerError
    try:
        found = notify_message(on, command, webhook)
    except TriggerError as error:
        found = error
    return _attach(cls, _NOTIFY, found, append=True)


def flow_triggers(flow_class: type) -> tuple[list[str], list[str]]:
    """(the upstream flows of @trigger_on_finish, the event names of @trigger);
    TriggerError for a bad one."""
    flows = getattr(flow_class, _TRIGGER_ON_FINISH, [])
    events = getattr(flow_class, _TRIGGER_EVENTS, [])
    for found in (flows, events):
        if isinstance(found, TriggerError):
            raise found
    return list(flows), list(events)


def flow_notify(flow_class: type) -> list[records_pb2.Notify]:
    """The flow's @notify receivers, in the order written; TriggerError for a bad one."""
    found = list(reversed(getattr(flow_class, _NOTIFY, [])))  # decorators apply bottom-up
    for notify_ in found:
        if isinstance(notify_, TriggerError):
            raise notify_
    return found


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
