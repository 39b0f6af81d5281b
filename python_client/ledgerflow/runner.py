"""Run a flow from Python, as Metaflow's ``Runner`` does: from a notebook, a script or a
test, without leaving Python and without reading a run id off the terminal.

    from ledgerflow import Runner

    with Runner("myflow.py", pylint=False) as runner:
        result = runner.run(alpha=0.7, tags=["nightly"])
        print(result.status, result.run.data.out)

A run is what ``python myflow.py run`` makes, and it is made that way: the flow file runs
as a subprocess of its own, so a run started here behaves (and fails, and resumes) like
one started at a shell, and a failing step cannot take the caller's process down. The
command line is written from the flow's own click command (its parameters, ``run`` and
``resume`` options), so what it takes is checked here, before anything starts; the
subprocess tells its run id through ``run --run-id-file``.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import errno
import importlib.machinery
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import click

from ledgerflow._flow_entry import called_flows
from ledgerflow._flowspec import FlowSpecBase
from ledgerflow._graph import FlowGraph, InvalidGraph
from ledgerflow.cli.flow import build_cli
from ledgerflow.cli.flow_options import flow_parameters
from ledgerflow.config import HOME_FOLDER
from ledgerflow.exceptions import LedgerflowException

if TYPE_CHECKING:
    from ledgerflow.client import Run
    from ledgerflow.metadata_client import MetadataClient

# How often a waiting caller looks at the subprocess and its output: often enough that
# a quick run is not made slower by the wait, rarely enough to cost nothing.
_POLL_SECONDS = 0.05
# How long a run that is stopped (a timeout, Ctrl-C, the end of a `with` block) has to
# record its attempts as failed before it is killed.
_STOP_GRACE_SECONDS = 10.0
# The options the Runner (and the Deployer) give each command themselves, to learn what
# it made: the caller cannot choose them.
_RUN_ID_FILE = "run_id_file"
_DEPLOYMENT_FILE = "deployment_file"
_OWN_OPTIONS = frozenset({_RUN_ID_FILE, _DEPLOYMENT_FILE})

# Loading a flow file changes sys.path and sets called_flows: one load at a time.
_loading = threading.Lock()


class RunNotStarted(LedgerflowException, RuntimeError):
    """The flow's command exited before its run had an id: a usage error, a failed pylint
    check, no run to resume. There is no run to look at, so this is raised rather than
    handing back an ExecutingRun without one; the command's output says why."""

    def __init__(self, command: list[str], returncode: int, stdout: str, stderr: str) -> None:
        super().__init__(_exited(command, returncode, stdout, stderr, "before it started a run"))
        self.command, self.returncode = command, returncode
        self.stdout, self.stderr = stdout, stderr


def _exited(command: list[str], returncode: int, stdout: str, stderr: str, when: str) -> str:
    """What a command that failed said, for an error raised in the caller's process: the
    command (without the interpreter) and the end of its output, where the reason is."""
    said = (stderr.strip() or stdout.strip() or "(no output)").splitlines()
    return f"`{' '.join(command[1:])}` exited {returncode} {when}:\n" + "\n".join(said[-20:])


def _load_flow_class(path: Path) -> type[FlowSpecBase]:
    """The flow class of a flow file, found by running the file here as a module of its
    own while ``MyFlow()`` at its bottom notes the class instead of starting the command
    line (see _flow_entry.called_flows). A file that calls its flow only under
    ``if __name__ == "__main__"`` is looked through for the one flow it defines.

    The module stays in sys.modules under a name of its own, as an imported module
    would: the graph is read from the class's source (inspect finds it there), and a
    flow file loaded again (edited in a notebook) replaces it."""
    name = f"_ledgerflow_runner_{path.stem}_{abs(hash(str(path)))}"
    loader = importlib.machinery.SourceFileLoader(name, str(path))
    spec = importlib.util.spec_from_file_location(name, path, loader=loader)
    assert spec is not None  # a loader was given
    module = importlib.util.module_from_spec(spec)
    called: list[type[FlowSpecBase]] = []
    folder = str(path.parent)
    with _loading:
        token = called_flows.set(called)
        # As `python myflow.py` would, the flow's own folder comes first on sys.path
        # while the file runs (for the modules beside it that it imports).
        sys.path.insert(0, folder)
        sys.modules[name] = module
        try:
            loader.exec_module(module)
        except BaseException:
            sys.modules.pop(name, None)
            raise
        finally:
            called_flows.reset(token)
            if folder in sys.path:
                sys.path.remove(folder)
    found = list(dict.fromkeys(called)) or [
        value
        for value in vars(module).values()
        if isinstance(value, type) and issubclass(value, FlowSpecBase) and value.__module__ == name
    ]
    if len(found) != 1:
        names = ", ".join(flow.__name__ for flow in found) or "none"
        raise ValueError(f"{path} must define one flow (a FlowSpec subclass); found {names}")
    return found[0]


def _text(value: Any) -> str:
    """A Python value as the command line takes it: a bool as `true`/`false` (what a
    bool parameter's option reads), a dict or list as JSON (for JSONType parameters),
    a path as its text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list | tuple):
        return json.dumps(value)
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return str(value)


def _arguments(
    command: click.Command, given: Mapping[str, Any], unknown: Callable[[str], str]
) -> list[str]:
    """The command-line arguments of `command` for keyword arguments named as its click
    parameters are (``max_workers``, ``tags``, ``with_``, a flow parameter's name), as
    Metaflow's Runner writes them: a bool flag as its flag (``--no-pylint`` for False,
    nothing when it has no negative), a multiple option once per item, None left out
    (the default applies). `unknown` says what is wrong with a name it does not take."""
    params = {param.name: param for param in command.params if param.name}
    options: list[str] = []
    positional: list[str] = []
    for name, value in given.items():
        param = params.get(name)
        if param is None or name in _OWN_OPTIONS:
            raise ValueError(unknown(name))
        if value is None:
            continue
        if isinstance(param, click.Argument):
            positional.append(_text(value))
        elif isinstance(param, click.Option) and param.is_bool_flag:
            flag = param.opts[0] if value else next(iter(param.secondary_opts), None)
            options += [flag] if flag else []
        elif isinstance(param, click.Option) and param.nargs > 1:
            # (NAME, VALUE) pairs, e.g. config_value=[("config", {...})] or a dict of them
            pairs = value.items() if isinstance(value, Mapping) else value
            for pair in pairs if param.multiple else [value]:
                options += [param.opts[0], *(_text(part) for part in pair)]
        elif isinstance(param, click.Option):
            many = param.multiple and isinstance(value, list | tuple | set | frozenset)
            for item in value if many else [value]:
                options += [param.opts[0], _text(item)]
    return options + positional


def _ledger_of(env: Mapping[str, str], cwd: Path, metadata: str | None) -> str:
    """Where a flow run with `env` in `cwd` records its run, as the client API's
    ``get_metadata()`` spells it: the same choice config.load_config makes in that
    process (a relative LEDGERFLOW_HOME is relative to its working folder)."""
    service = env.get("LEDGERFLOW_SERVICE") or None
    if (metadata or ("service" if service else "local")) == "service":
        return f"service@{service}"
    if env.get("LEDGERFLOW_HOME"):
        return f"local@{(cwd / env['LEDGERFLOW_HOME']).absolute()}"
    for folder in (cwd, *cwd.parents):
        if (folder / HOME_FOLDER).is_dir():
            return f"local@{folder / HOME_FOLDER}"
    return f"local@{cwd / HOME_FOLDER}"


def _same_ledger(one: str, other: str) -> bool:
    kind, _, where = one.partition("@")
    other_kind, _, other_where = other.partition("@")
    if kind != other_kind:
        return False
    if kind == "service":
        return where == other_where
    return Path(where).resolve() == Path(other_where).resolve()


def _client_of(env: Mapping[str, str], cwd: Path, metadata_option: str | None) -> MetadataClient:
    """The client API's metadata client, reading the ledger a flow command run with `env`
    in `cwd` wrote to: when that is another ledger than the one the client API reads,
    the client API is switched to it with ``metadata()``, as Metaflow's Runner does, so
    that what the command made (a run, its artifacts) can be read."""
    from ledgerflow.client import _clients, get_metadata, metadata

    where = _ledger_of(env, cwd, metadata_option)
    if not _same_ledger(where, get_metadata()):
        metadata(where)
    client, _ = _clients()
    return client


class _Output:
    """One output stream of the run's subprocess: a file it writes (so that it goes on
    writing even if the caller goes away), read whole or as it grows."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._position = 0
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.kept: str | None = None  # the text, once its file is removed

    def text(self) -> str:
        if self.kept is not None:
            return self.kept
        try:
            return self.path.read_bytes().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def new_text(self) -> str:
        """What was written since the last call (a character cut in two waits for the
        rest of its bytes)."""
        try:
            with self.path.open("rb") as file:
                file.seek(self._position)
                data = file.read()
        except FileNotFoundError:
            return ""
        self._position += len(data)
        return self._decoder.decode(data)


class _FlowCommand:
    """One command of a flow file running as a subprocess, its output going to files (so
    that it goes on writing even if the caller goes away): what ExecutingRun and the
    Deployer's deploy share. `own_options` makes the options the command is given to
    tell what it made (``--run-id-file``), with paths in the command's own folder."""

    def __init__(
        self,
        command: list[str],
        env: dict[str, str],
        cwd: Path,
        own_options: Callable[[Path], list[str]],
    ) -> None:
        self._env, self._cwd = env, cwd
        self._folder = tempfile.TemporaryDirectory(
            prefix="ledgerflow-runner-", ignore_cleanup_errors=True
        )
        folder = Path(self._folder.name)
        self.command = [*command, *own_options(folder)]  # as it ran
        self._stdout, self._stderr = _Output(folder / "stdout"), _Output(folder / "stderr")
        with self._stdout.path.open("wb") as out, self._stderr.path.open("wb") as err:
            self._process = subprocess.Popen(
                self.command,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                env=env,
                cwd=cwd,
            )

    @property
    def returncode(self) -> int | None:
        return self._process.poll()

    @property
    def stdout(self) -> str:
        return self._stdout.text()

    @property
    def stderr(self) -> str:
        return self._stderr.text()

    def stop(self) -> None:
        """Stops the command if it still goes: SIGTERM first, which the runtime answers
        by recording its attempts and the run as failed (so ``resume`` can pick it up),
        then SIGKILL if it has not exited after a grace period."""
        if self._process.poll() is not None:
            return
        self._process.terminate()
        try:
            self._process.wait(_STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()

    def _follow(self, show_output: bool) -> None:
        """Blocks until the subprocess exits, echoing its output as it comes when
        `show_output`. Interrupted (Ctrl-C, a notebook's interrupt, which reaches only
        this process), it stops the command rather than leave it going unwatched."""
        try:
            while True:
                try:
                    self._process.wait(_POLL_SECONDS)
                    finished = True
                except subprocess.TimeoutExpired:
                    finished = False
                if show_output:
                    self._echo()
                if finished:
                    return
        except KeyboardInterrupt:
            self.stop()
            raise

    def _echo(self) -> None:
        for output, sink in ((self._stdout, sys.stdout), (self._stderr, sys.stderr)):
            text = output.new_text()
            if text:
                sink.write(text)
                sink.flush()

    def cleanup(self) -> None:
        """Stops the command if it still goes and removes its files; ``stdout`` and
        ``stderr`` stay readable."""
        self.stop()
        self._stdout.kept, self._stderr.kept = self._stdout.text(), self._stderr.text()
        self._folder.cleanup()


class ExecutingRun(_FlowCommand):
    """A run started by :class:`Runner`: the subprocess that runs it and, through
    ``.run``, the client API's :class:`~ledgerflow.Run` of the run it made.

    ``status`` is the subprocess's: 'running', then 'successful' (exit 0) or 'failed';
    ``returncode`` its exit status (None while it runs); ``stdout`` and ``stderr`` what
    it has printed so far. As a context manager, leaving it stops the run if it is still
    going and removes the files it used."""

    def __init__(
        self,
        runner: Runner,
        command: list[str],
        env: dict[str, str],
        cwd: Path,
    ) -> None:
        self._runner = runner
        self._run_id: str | None = None
        self._run: Run | None = None
        super().__init__(command, env, cwd, self._run_id_option)

    def _run_id_option(self, folder: Path) -> list[str]:
        self._run_id_file = folder / "run-id"
        return ["--run-id-file", str(self._run_id_file)]

    def __repr__(self) -> str:
        return f"ExecutingRun({self._runner.flow_name}/{self.run_id or '?'}, {self.status})"

    # ---- what the caller reads --------------------------------------------------------

    @property
    def run_id(self) -> str | None:
        """The run's id, once the subprocess has written it (see ``run --run-id-file``)."""
        return self._read_run_id()

    def _read_run_id(self) -> str | None:
        if self._run_id is None:
            with contextlib.suppress(FileNotFoundError):  # not yet, or gone with cleanup()
                self._run_id = self._run_id_file.read_text().strip() or None
        return self._run_id

    @property
    def run(self) -> Run | None:
        """The client API's Run of this run (None if the command failed before the run
        had an id). Read again while the run is unfinished, so that its status is
        current. Its namespace is not checked: the run is the one this object started,
        whichever user the subprocess ran as. When the subprocess recorded the run in
        another ledger than the one the client API reads (another LEDGERFLOW_HOME in
        `env`, another `cwd`), the client API is switched to that ledger with
        ``metadata()``, as Metaflow's Runner does, so the run's artifacts can be read."""
        run_id = self.run_id
        if run_id is None:
            return None
        if self._run is None or not self._run.finished:
            from ledgerflow.client import Run

            ledger = _client_of(self._env, self._cwd, self._runner.top_level.get("metadata"))
            self._run = Run._from_record(ledger.run(self._runner.flow_name, run_id))
        return self._run

    @property
    def status(self) -> str:
        """'running', 'successful' or 'failed': the subprocess's, as in Metaflow (for a
        ``--remote --detach`` run, the submission's; ``.run.status`` is the run's)."""
        code = self._process.poll()
        return "running" if code is None else "successful" if code == 0 else "failed"

    # ---- waiting and stopping ----------------------------------------------------------

    async def wait(self, timeout: float | None = None) -> ExecutingRun:
        """Waits, without blocking the event loop, until the run's subprocess exits; after
        `timeout` seconds it is stopped instead (the run is recorded as failed, so it
        can be resumed) and TimeoutError raised. Returns this object."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while self._process.poll() is None:
            if deadline is not None and loop.time() >= deadline:
                await asyncio.to_thread(self.stop)
                raise TimeoutError(
                    f"{self._runner.flow_name}/{self.run_id} ran longer than {timeout} s: "
                    "it was stopped"
                )
            await asyncio.sleep(_POLL_SECONDS)
        return self

    async def _until_started(self) -> None:
        """Waits until the run has an id, or the subprocess has exited without one."""
        while self.run_id is None and self._process.poll() is None:
            await asyncio.sleep(_POLL_SECONDS)
        self._check_started()

    def _check_started(self) -> None:
        if self.run_id is None and self._process.poll() is not None:
            error = RunNotStarted(self.command, self._process.returncode, self.stdout, self.stderr)
            self.cleanup()
            raise error

    # ---- cleaning up -------------------------------------------------------------------

    def cleanup(self) -> None:
        """Stops the run if it still goes and removes its files; ``stdout``, ``stderr``
        and ``run`` stay readable."""
        self.stop()
        self._read_run_id()  # once more, before its file goes
        super().cleanup()

    def __enter__(self) -> ExecutingRun:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.cleanup()


class _FlowFile:
    """A flow file loaded to write its command lines from Python values: what Runner and
    Deployer share. The flow file is loaded here once, to learn the flow's parameters
    and options (its ``MyFlow()`` starts nothing); `top_level_options` are checked now,
    so that a misspelt one fails before anything starts."""

    # Where the flow's parameters go, for the error about a top-level option it lacks.
    _PARAMETERS_GO_TO = "run()"

    def __init__(
        self,
        flow_file: str | os.PathLike[str],
        show_output: bool = True,
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        **top_level_options: Any,
    ) -> None:
        self.flow_file = Path(flow_file).absolute()
        if not self.flow_file.is_file():
            raise FileNotFoundError(errno.ENOENT, "no such flow file", str(self.flow_file))
        self.cwd = Path(cwd).absolute() if cwd is not None else None
        if self.cwd is not None and not self.cwd.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, "cwd is not a folder", str(self.cwd))
        self.show_output, self.env = show_output, dict(env or {})
        self.flow_class = _load_flow_class(self.flow_file)
        try:
            graph = FlowGraph(self.flow_class)
            self.parameters = flow_parameters(self.flow_class)
        except InvalidGraph as error:
            raise ValueError(
                f"{self.flow_file}: {self.flow_class.__name__} is not a valid flow: {error}"
            ) from error
        self.flow_name = graph.name
        self._cli = build_cli(self.flow_class, graph)
        self.top_level = dict(top_level_options)
        self._top_level_args = _arguments(self._cli, self.top_level, self._not_top_level)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.flow_file)!r})"

    def _command(self, name: str) -> click.Command:
        return self._cli.commands[name]

    def _option_names(self, command: str) -> str:
        names = [p.name for p in self._command(command).params if p.name]
        return ", ".join(n for n in names if n not in self.parameters and n not in _OWN_OPTIONS)

    def _no_parameter(self, name: str, command: str) -> str:
        """Why `name` is not for `command`: the flow has no such parameter."""
        parameters = ", ".join(self.parameters) or "none"
        return (
            f"{self.flow_name} has no parameter {name!r}: its parameters are {parameters} "
            f"({command} also takes {self._option_names(command)})"
        )

    def _not_top_level(self, name: str) -> str:
        top = ", ".join(p.name for p in self._cli.params if p.name)
        return (
            f"{type(self).__name__} takes no option {name!r}: the top-level options of "
            f"{self.flow_file.name} are {top} (the flow's parameters go to "
            f"{self._PARAMETERS_GO_TO})"
        )

    def _check_required(self, params: Mapping[str, Any]) -> None:
        """Refuses, before anything starts, values that leave a required parameter out."""
        environment = self._environment()
        missing = [
            name
            for name, parameter in self.parameters.items()
            if parameter.required
            and parameter.default is None
            and params.get(name) is None
            and not environment.get(parameter.environment_variable)  # as the CLI reads it
        ]
        if missing:
            raise ValueError(f"{self.flow_name} needs the parameters {', '.join(missing)}")

    def _environment(self) -> dict[str, str]:
        """The subprocess's environment: this process's, with `env` over it."""
        env = {**os.environ, **self.env}
        # The subprocess writes to files: unbuffered, what it prints is there at once,
        # for show_output and for .stdout read while it runs.
        env.setdefault("PYTHONUNBUFFERED", "1")
        return env


class Runner(_FlowFile):
    """Runs a flow file from Python, as Metaflow's ``metaflow.Runner``.

    `flow_file` is the path of a Python flow file (relative to this process's working
    folder). `show_output` echoes what ``run()`` and ``resume()`` print while they wait
    (``async_run()`` and ``async_resume()`` keep it in ``.stdout`` and ``.stderr`` only,
    as their runs may overlap). `env` adds environment variables to the runs' (this
    process's environment is the base); `cwd` is their working folder (default: this
    process's), which also decides where the embedded ledger is. `top_level_options` are
    the options before the command, named as their click parameters:
    ``metadata='local'``, ``datastore='s3'``, ``package_suffixes='.py,.csv'``,
    ``pylint=False``.

    The flow file is loaded here once, to learn the flow's parameters and options: its
    top-level code runs in this process (its ``MyFlow()`` does not start anything). As
    a context manager, leaving it stops the runs still going and removes the files the
    runs used."""

    def __init__(
        self,
        flow_file: str | os.PathLike[str],
        show_output: bool = True,
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        **top_level_options: Any,
    ) -> None:
        super().__init__(flow_file, show_output, env, cwd, **top_level_options)
        self._started: list[ExecutingRun] = []

    # ---- the command lines --------------------------------------------------------------

    def _not_for_run(self, name: str) -> str:
        if name == _RUN_ID_FILE:
            return "run_id_file is the Runner's own: it finds the run through it"
        return self._no_parameter(name, "run")

    def _not_for_resume(self, name: str) -> str:
        if name == _RUN_ID_FILE:
            return "run_id_file is the Runner's own: it finds the run through it"
        return (
            f"resume takes no {name!r}: it takes {self._option_names('resume')} (a resumed "
            "run has the parameters of the run it resumes)"
        )

    def _run_command(self, params: Mapping[str, Any]) -> list[str]:
        self._check_required(params)
        return ["run", *_arguments(self._command("run"), params, self._not_for_run)]

    def _resume_command(self, options: Mapping[str, Any]) -> list[str]:
        return ["resume", *_arguments(self._command("resume"), options, self._not_for_resume)]

    def _start(self, command: list[str]) -> ExecutingRun:
        executing = ExecutingRun(
            self,
            [sys.executable, str(self.flow_file), *self._top_level_args, *command],
            self._environment(),
            self.cwd or Path.cwd(),
        )
        self._started.append(executing)
        return executing

    # ---- running --------------------------------------------------------------------------

    def run(self, **params: Any) -> ExecutingRun:
        """Runs the flow and returns when the run has finished, failed or not (see
        ``.status``). `params` are the flow's parameters as Python values (a bool, a dict
        for a JSONType parameter, a path for an IncludeFile) and ``run``'s options
        (``max_workers=8``, ``tags=['a', 'b']``, ``with_=['retry']``, ``launcher=...``).
        Raises ValueError for a name the flow does not take, RunNotStarted when the
        command fails before the run has an id."""
        executing = self._start(self._run_command(params))
        executing._follow(self.show_output)
        executing._check_started()
        return executing

    def resume(self, **kwargs: Any) -> ExecutingRun:
        """Resumes a run (``step='b'``, ``origin_run_id='...'``, ``tags=[...]``, the
        options of ``resume``) and returns when the new run has finished; as run()."""
        executing = self._start(self._resume_command(kwargs))
        executing._follow(self.show_output)
        executing._check_started()
        return executing

    async def async_run(self, **params: Any) -> ExecutingRun:
        """Starts the flow and returns as soon as the run has an id (``.run`` works);
        ``await result.wait()`` waits for its end. Takes what run() takes."""
        executing = self._start(self._run_command(params))
        await executing._until_started()
        return executing

    async def async_resume(self, **kwargs: Any) -> ExecutingRun:
        """Starts a resume and returns as soon as the new run has an id; as async_run()."""
        executing = self._start(self._resume_command(kwargs))
        await executing._until_started()
        return executing

    # ---- cleaning up ----------------------------------------------------------------------

    def cleanup(self) -> None:
        """Stops the runs still going and removes their files."""
        for executing in self._started:
            executing.cleanup()

    def __enter__(self) -> Runner:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.cleanup()

    async def __aenter__(self) -> Runner:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await asyncio.to_thread(self.cleanup)
