"""What ``current`` says inside a task, the same wherever the task runs."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def task_facts(
    *,
    flow_name: str,
    run_id: str,
    step_name: str,
    task_id: str,
    attempt: int,
    user: str,
    tags: Iterable[str],
    origin_run_id: str,
    parameter_names: Iterable[str],
) -> dict[str, Any]:
    """``current``'s facts for one attempt: `tags` are the run's user and system tags."""
    return dict(
        flow_name=flow_name,
        run_id=run_id,
        step_name=step_name,
        task_id=task_id,
        retry_count=attempt,
        namespace=f"user:{user}",
        username=user,
        tags=list(tags),
        origin_run_id=origin_run_id or None,
        parameter_names=sorted(parameter_names),
    )
