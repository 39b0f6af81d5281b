"""The client API: find and inspect flows, runs, steps, tasks and artifacts.

    from ledgerflow import Flow, namespace
    namespace('user:savin')
    run = Flow('MyFlow').latest_run
    run['join'].task.data.out

:mod:`.settings` chooses where to read and in which namespace; :mod:`.core` holds the
objects from Flow down to Task; :mod:`.artifacts` a task's artifacts.
"""

from ledgerflow.client.artifacts import Artifacts, DataArtifact
from ledgerflow.client.core import Flow, Ledgerflow, Run, Step, Task, _events_of, _time
from ledgerflow.client.settings import (
    _clients,
    _config,
    _connection,
    default_metadata,
    default_namespace,
    get_metadata,
    get_namespace,
    metadata,
    namespace,
)

__all__ = [
    "Artifacts",
    "DataArtifact",
    "Flow",
    "Ledgerflow",
    "Run",
    "Step",
    "Task",
    "_clients",
    "_config",
    "_connection",
    "_events_of",
    "_time",
    "default_metadata",
    "default_namespace",
    "get_metadata",
    "get_namespace",
    "metadata",
    "namespace",
]
