"""Deploy a flow from Python, as Metaflow's ``Deployer`` does: deploy, trigger, watch and
retire a deployment from a notebook, a script or a test, without a terminal.

    from ledgerflow import Deployer

    deployed = Deployer("myflow.py", pylint=False).deploy(alpha=0.7, tags=["nightly"])
    triggered = deployed.trigger(alpha=0.9)
    run = triggered.wait_for_run(timeout=600)
    print(run.status, run.data.out)

A deployment is what ``python myflow.py deploy`` records, and it is recorded that way:
the flow file runs as a subprocess (through the same command-line writing and process
handling as :class:`~ledgerflow.Runner`), so what Python deploys is what the shell
deploys, checked by the same code; the subprocess tells the deployment's name through
``deploy --deployment-file``. Everything after the deploy (trigger, pause, the runs)
talks to the metadata service directly, as ``ledgerflow deployments`` does.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ledgerflow.engine.deployments import deployment_tag
from ledgerflow.exceptions import LedgerflowException, LedgerflowNotFound, RpcError
from ledgerflow.runner import (
    _DEPLOYMENT_FILE,
    _arguments,
    _client_of,
    _exited,
    _FlowCommand,
    _FlowFile,
)

if TYPE_CHECKING:
    from ledgerflow.client import Run
    from ledgerflow.metadata_client import MetadataClient
    from ledgerflow.v1 import records_pb2

# How often a waiting caller asks the service about a triggered run: a run of a
# deployment takes an executor's poll at least, so a few looks a second are plenty.
_RUN_POLL_SECONDS = 0.2
# How long `.run` waits for a triggered run's record: the service records the run
# before it answers the trigger, so this only covers a replica catching up.
_RUN_APPEARS_SECONDS = 30.0
# The top-level options that deploy() also takes: they choose the @project branch,
# which is the command's, not the Deployer's.
_BRANCH_OPTIONS = ("branch", "production")


class DeployNotCreated(LedgerflowException, RuntimeError):
    """``deploy`` exited without recording a deployment: a usage error, no metadata
    service, a flow without @project given a branch. There is no deployment to hand
    back, so this is raised; the command's output says why."""

    def __init__(self, command: list[str], returncode: int, stdout: str, stderr: str) -> None:
        super().__init__(
            _exited(command, returncode, stdout, stderr, "before it recorded a deployment")
        )
        self.command, self.returncode = command, returncode
        self.stdout, self.stderr = stdout, stderr


class DeploymentPaused(RpcError):
    """A paused deployment was triggered. Raised instead of the service's bare
    FAILED_PRECONDITION so that the caller can tell this refusal, and its fix (resume),
    from others; it is still an RpcError for code that catches those."""


def _parameter_json(value: Any) -> str:
    """A Python value as the service takes a parameter: JSON text, as the deployment's
    own values are recorded (a string stays a string: "007" is not 7)."""
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    return json.dumps(value)


class TriggeredRun:
    """A run of a deployment started by :meth:`DeployedFlow.trigger`: it runs on the
    executors, not here, so this is a handle on the run's record in the service.

    ``run`` is the client API's Run (its status current while it runs); ``status`` the
    run's ('running', 'succeeded', 'failed' or 'lost'); ``wait_for_run()`` blocks until
    it has finished."""

    def __init__(self, deployed: DeployedFlow, flow_name: str, run_id: str) -> None:
        self.deployed, self.flow_name, self.run_id = deployed, flow_name, run_id
        self.pathspec = f"{flow_name}/{run_id}"
        self._run: Run | None = None

    def __repr__(self) -> str:
        return f"TriggeredRun({self.pathspec})"

    @property
    def run(self) -> Run:
        """The client API's Run of this run, read again while it is unfinished so that
        its status is current. Its namespace is not checked: a deployment's runs are in
        ``production:NAME``, not the caller's, and this one is known to be the one
        triggered. Waits (a short while) for the run's record if it is not there yet."""
        if self._run is None or not self._run.finished:
            from ledgerflow.client import Run

            client = self.deployed._client()
            deadline = time.monotonic() + _RUN_APPEARS_SECONDS
            while True:
                try:
                    record = client.run(self.flow_name, self.run_id)
                    break
                except LedgerflowNotFound:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(_RUN_POLL_SECONDS)
            self._run = Run._from_record(record)
        return self._run

    @property
    def status(self) -> str:
        """The run's status: 'running', 'succeeded', 'failed' or 'lost'."""
        return self.run.status

    def wait_for_run(self, timeout: float | None = None) -> Run:
        """Blocks until the run has finished (succeeded or failed) or was lost, and
        returns its Run; raises TimeoutError after `timeout` seconds. The run goes on
        (on the executors) either way: it is not this process's to stop."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            run = self.run
            if run.finished or run.status == "lost":
                return run
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(
                    f"{self.pathspec} has not finished after {timeout} s (it is {run.status})"
                )
            time.sleep(_RUN_POLL_SECONDS)


class DeployedFlow:
    """A deployment made by :meth:`Deployer.deploy`, by its name in the service.

    ``deployment`` is its record (read anew each time: another caller may pause or
    redeploy it); ``trigger()`` starts a run; ``runs()`` lists its runs; ``pause()``,
    ``resume()`` and ``delete()`` do what ``ledgerflow deployments`` does."""

    def __init__(self, deployer: Deployer, name: str) -> None:
        self.deployer, self.name = deployer, name
        self.flow_name = deployer.flow_name

    def __repr__(self) -> str:
        return f"DeployedFlow({self.name!r})"

    def _client(self) -> MetadataClient:
        return self.deployer._client()

    @property
    def deployment(self) -> records_pb2.Deployment:
        """The deployment's record, fresh from the service: its version, parameters,
        schedule, next due time, whether it is paused or deleted."""
        return self._client().deployment(self.name)

    def trigger(self, **params: Any) -> TriggeredRun:
        """Starts a run now, on the executors, with `params` (Python values, sent as JSON)
        replacing the deployment's values for this run; None leaves a value as deployed.
        Raises ValueError for a name the flow does not take (before asking the service)
        and DeploymentPaused when the deployment is paused."""
        unknown = sorted(set(params) - set(self.deployer.parameters))
        if unknown:
            known = ", ".join(self.deployer.parameters) or "none"
            raise ValueError(
                f"{self.flow_name} has no parameter {unknown[0]!r}: its parameters are {known}"
            )
        values = {k: _parameter_json(v) for k, v in params.items() if v is not None}
        client = self._client()
        try:
            started = client.trigger_deployment(self.name, values)
        except RpcError as error:
            if error.code != "FAILED_PRECONDITION" or not self.deployment.paused:
                raise
            raise DeploymentPaused(
                error.code,
                f"deployment {self.name!r} is paused: it starts no runs until resumed "
                "(call .resume() on it, or `ledgerflow deployments resume "
                f"{self.name}`)",
            ) from error
        return TriggeredRun(self, started.flow_name, started.run_id)

    def runs(self) -> Iterator[Run]:
        """The runs of this deployment, newest first, whoever fired them (its schedule,
        a trigger, a backfill): those tagged ``deployment:NAME``, in any namespace,
        since they are production's, not the caller's."""
        from ledgerflow.client import Run

        for record in self._client().runs(self.flow_name, [deployment_tag(self.name)]):
            yield Run._from_record(record)

    def pause(self, reason: str = "") -> records_pb2.Deployment:
        """Stops the schedule firing and refuses triggers until resume(); `reason` goes to
        the ledger. Returns the deployment's record."""
        return self._client().pause_deployment(self.name, reason)

    def resume(self) -> records_pb2.Deployment:
        """Fires the schedule again from its next due time (those passed while paused are
        skipped) and accepts triggers. Returns the deployment's record."""
        return self._client().resume_deployment(self.name)

    def delete(self) -> records_pb2.Deployment:
        """Stops the deployment for good; its runs stay in the ledger. Deploying the name
        again revives it. Returns the deployment's record."""
        return self._client().delete_deployment(self.name)


class Deployer(_FlowFile):
    """Deploys a flow file from Python, as Metaflow's ``metaflow.Deployer``.

    Takes what :class:`~ledgerflow.Runner` takes: `flow_file`, `show_output` (echo what
    ``deploy`` prints), `env` (added to this process's environment for the subprocess;
    LEDGERFLOW_SERVICE there, or here, names the metadata service that must record the
    deployment), `cwd`, and the top-level options before the command, named as their
    click parameters (``pylint=False``, ``package_suffixes='.py,.csv'``,
    ``branch='x'``). The flow file is loaded here once, to learn its parameters."""

    _PARAMETERS_GO_TO = "deploy()"

    def _client(self) -> MetadataClient:
        """The client of the service the deploy went to (see runner._client_of)."""
        return _client_of(
            {**os.environ, **self.env}, self.cwd or Path.cwd(), self.top_level.get("metadata")
        )

    def _not_for_deploy(self, name: str) -> str:
        if name == _DEPLOYMENT_FILE:
            return "deployment_file is the Deployer's own: it learns the deployment's name by it"
        return self._no_parameter(name, "deploy")

    def _deploy_command(self, given: Mapping[str, Any]) -> list[str]:
        """The whole command line: `branch` and `production` go before ``deploy``, as the
        top-level options they are (over the Deployer's own), the rest after it."""
        top = dict(self.top_level)
        options = dict(given)
        for name in _BRANCH_OPTIONS:
            if name in options:
                top[name] = options.pop(name)
        self._check_required(options)
        return [
            sys.executable,
            str(self.flow_file),
            *_arguments(self._cli, top, self._not_top_level),
            "deploy",
            *_arguments(self._command("deploy"), options, self._not_for_deploy),
        ]

    def deploy(self, **params: Any) -> DeployedFlow:
        """Deploys the flow (a new version if its name is deployed already) and returns
        when the service has recorded it. `params` are the flow's parameters as Python
        values (the deployment's values for its runs) and ``deploy``'s options
        (``tags=[...]``, ``with_=['retry']``, ``branch='x'`` or ``production=True`` for a
        @project flow). Raises ValueError for a name the flow does not take, before
        anything starts, and DeployNotCreated when the command fails."""
        name_file: list[Path] = []

        def deployment_file(folder: Path) -> list[str]:
            name_file.append(folder / "deployment")
            return ["--deployment-file", str(name_file[0])]

        command = _FlowCommand(
            self._deploy_command(params),
            self._environment(),
            self.cwd or Path.cwd(),
            deployment_file,
        )
        try:
            command._follow(self.show_output)
            name = ""
            with contextlib.suppress(FileNotFoundError):
                name = name_file[0].read_text().strip()
            if command.returncode != 0 or not name:
                raise DeployNotCreated(
                    command.command, command._process.returncode, command.stdout, command.stderr
                )
        finally:
            command.cleanup()
        return DeployedFlow(self, name)
