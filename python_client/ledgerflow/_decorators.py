"""Step decorators. Each attaches its options to the step function; the runtime
reads them (``step_options``) when it schedules the step."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from ledgerflow._flow_config import deferrable

F = Callable[..., Any]
_OPTIONS = "_ledgerflow_options"


def step(func: F) -> F:
    """Marks a method of a FlowSpec as a step."""
    func.is_step = True  # type: ignore[attr-defined]
    return func


@dataclass(frozen=True)
class Resources:
    cpu: float = 1
    gpu: int = 0
    memory: int = 4096  # megabytes
    # The container image a remote run's executor runs the step in ("": its own).
    image: str = ""


@dataclass(frozen=True)
class Retry:
    times: int = 3
    minutes_between_retries: float = 2


@dataclass(frozen=True)
class Catch:
    var: str | None = None
    print_exception: bool = True


@dataclass(frozen=True)
class Timeout:
    seconds: float


@dataclass
class StepOptions:
    resources: Resources = field(default_factory=Resources)
    retry: Retry | None = None
    catch: Catch | None = None
    timeout: Timeout | None = None
    environment: dict[str, str] = field(default_factory=dict)
    # @parallel: the step's tasks are a gang (see `parallel`).
    parallel: bool = False
    # Decorators that act in the task process around the step (@card): see TaskHook.
    hooks: list[Any] = field(default_factory=list)


class TaskHook(Protocol):
    """A step decorator that works inside the task (as Metaflow's task_pre_step and
    task_finished hooks): the runtime calls it without knowing what it is, so the
    feature (ledgerflow.cards) depends on the runtime and not the other way round.
    `task` is the runtime's TaskContext (runtime/task.py)."""

    def check_step(self, step_name: str) -> None:
        """Raises ValueError, naming the step, when the decorator's options cannot
        work together (the flow's graph check reports it before anything runs)."""

    def task_pre_step(self, task: Any) -> None:
        """Before the step's code runs (the flow object is ready)."""

    def task_finished(self, task: Any, outcome: Any) -> list[Any]:
        """After the step (whether it failed or not): payload-only events to record
        with the attempt's outcome. Never raises."""


def step_options(func: Any) -> StepOptions:
    return getattr(func, _OPTIONS, None) or StepOptions()


def task_hooks(func: F) -> list[Any]:
    """The step's hooks, as a list a decorator may add to."""
    options = getattr(func, _OPTIONS, None)
    if options is None:
        options = StepOptions()
        setattr(func, _OPTIONS, options)
    return options.hooks


def _number(decorator: str, name: str, value: Any, *, whole: bool = False) -> Any:
    """`value` when it is a number (a whole one if `whole`); else a ValueError that
    names the decorator and the argument (a config may have given a text)."""
    kinds: tuple[type, ...] = (int,) if whole else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds):
        what = "a whole number" if whole else "a number"
        raise ValueError(f"{decorator}: {name} must be {what}, got {value!r}")
    return value


def _attach(func: F, name: str, value: Any) -> F:
    options = getattr(func, _OPTIONS, None)
    if options is None:
        options = StepOptions()
        setattr(func, _OPTIONS, options)
    setattr(options, name, value)
    return func


@deferrable
def resources(
    func: F | None = None, *, cpu: float = 1, gpu: int = 0, memory: int = 4096, image: str = ""
) -> Any:
    """The CPU cores, GPUs and memory (MB) the step needs, and optionally the container
    image to run it in. Recorded with each task; enforced by the executor when the run
    is remote (``run --remote``)."""
    _number("@resources", "cpu", cpu)
    _number("@resources", "gpu", gpu, whole=True)
    _number("@resources", "memory", memory, whole=True)
    if cpu <= 0 or gpu < 0 or memory <= 0:
        raise ValueError("@resources: cpu and memory must be positive, gpu at least 0")
    if not isinstance(image, str) or any(c.isspace() for c in image):
        raise ValueError(f"@resources: image {image!r} is not an image name")
    value = Resources(cpu=cpu, gpu=gpu, memory=memory, image=image)
    return _attach(func, "resources", value) if func else (lambda f: _attach(f, "resources", value))


@deferrable
def retry(func: F | None = None, *, times: int = 3, minutes_between_retries: float = 2) -> Any:
    """Runs the step again (up to `times` more attempts) when it fails of its own
    doing (an exception, a timeout, a kill): at once in a local run, after
    `minutes_between_retries` on executors. The rules: ledgerflow.engine.attempts."""
    _number("@retry", "times", times, whole=True)
    _number("@retry", "minutes_between_retries", minutes_between_retries)
    if times < 0 or minutes_between_retries < 0:
        raise ValueError("@retry: times and minutes_between_retries must be at least 0")
    value = Retry(times=times, minutes_between_retries=minutes_between_retries)
    return _attach(func, "retry", value) if func else (lambda f: _attach(f, "retry", value))


@deferrable
def catch(func: F | None = None, *, var: str | None = None, print_exception: bool = True) -> Any:
    """When the step still fails after its retries, stores the exception in artifact
    `var` (if given; None when nothing failed) and lets the flow go on; an attempt that
    timed out or was killed is caught too. The rules: ledgerflow.engine.attempts."""
    if var is not None and not var.isidentifier():
        raise ValueError(f"@catch: var {var!r} must be a Python identifier")
    value = Catch(var=var, print_exception=print_exception)
    return _attach(func, "catch", value) if func else (lambda f: _attach(f, "catch", value))


@deferrable
def timeout(
    func: F | None = None, *, seconds: float = 0, minutes: float = 0, hours: float = 0
) -> Any:
    """Fails an attempt that runs longer than the given time (it is killed)."""
    for name, amount in (("seconds", seconds), ("minutes", minutes), ("hours", hours)):
        _number("@timeout", name, amount)
    total = seconds + 60 * minutes + 3600 * hours
    if total <= 0:
        raise ValueError("@timeout needs a positive seconds=, minutes= or hours=")
    value = Timeout(seconds=total)
    return _attach(func, "timeout", value) if func else (lambda f: _attach(f, "timeout", value))


@deferrable
def environment(func: F | None = None, *, vars: dict[str, str] | None = None) -> Any:
    """Sets environment variables for the step's tasks (``@environment(vars={...})``,
    as in Metaflow): names must be valid variable names and values texts."""
    value = dict(vars or {})
    for name, text in value.items():
        if not isinstance(name, str) or not name or "=" in name or "\x00" in name:
            raise ValueError(f"@environment: {name!r} is not an environment variable name")
        if not isinstance(text, str):
            raise ValueError(
                f"@environment: the value of {name} must be a str, not {type(text).__name__}"
            )
    return (
        _attach(func, "environment", value)
        if func
        else (lambda f: _attach(f, "environment", value))
    )


def parallel(func: F | None = None) -> Any:
    """Makes the step a gang: ``self.next(self.train, num_parallel=4)`` starts four of
    its tasks together (on one executor, one Slurm job or one Kubernetes indexed Job),
    each told its place in ``current.parallel`` (node_index, num_nodes, main_ip), as
    distributed training needs. The step after it joins them (``def join(self,
    inputs)``), as after a foreach."""
    return _attach(func, "parallel", True) if func else (lambda f: _attach(f, "parallel", True))
