"""Projects and branches (``@project``): the names and tags that keep one data
scientist's version of a flow apart from another's and from production.

The local runtime tags a run with them, ``deploy`` names a deployment with them, and
``current`` reads them back from the run's tags, so a task learns its project and branch
the same way wherever it runs.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

PRODUCTION_BRANCH = "prod"
_PROJECT_RE = re.compile(r"^[a-z0-9_]{1,64}\Z")
_BRANCH_RE = re.compile(r"^[A-Za-z0-9_\-]{1,64}\Z")


class ProjectError(ValueError):
    """A project or branch name that cannot be used."""


def check_project(name: str) -> str:
    if not _PROJECT_RE.match(name):
        raise ProjectError(
            f"@project name {name[:80]!r} is not valid: use 1-64 lowercase letters, digits and '_'"
        )
    return name


def branch_of(username: str, branch: str | None, production: bool) -> str:
    """The branch a run or deployment belongs to, named as Metaflow names it:
    ``prod`` (``--production``), ``prod.B`` (``--production --branch B``), ``test.B``
    (``--branch B``), else the user's own ``user.NAME``."""
    if branch is not None and not _BRANCH_RE.match(branch):
        raise ProjectError(
            f"--branch {branch[:80]!r} is not valid: use 1-64 letters, digits, '_' or '-'"
        )
    if production:
        return f"{PRODUCTION_BRANCH}.{branch}" if branch else PRODUCTION_BRANCH
    return f"test.{branch}" if branch else f"user.{username}"


def is_production_branch(branch: str) -> bool:
    return branch == PRODUCTION_BRANCH or branch.startswith(PRODUCTION_BRANCH + ".")


def project_flow_name(project: str, branch: str, flow_name: str) -> str:
    """``project.branch.FlowName``: the name a project's deployment goes by."""
    return f"{project}.{branch}.{flow_name}"


def project_tags(project: str, branch: str) -> list[str]:
    """The system tags of a run of a project's branch."""
    return [f"project:{project}", f"project_branch:{branch}"]


def project_facts(flow_name: str, tags: Iterable[str]) -> dict[str, Any]:
    """``current``'s project facts, read from the run's system tags (all None without
    ``@project``)."""
    found = {}
    for tag in tags:
        key, _, value = tag.partition(":")
        if key in ("project", "project_branch") and value:
            found[key] = value
    project, branch = found.get("project"), found.get("project_branch")
    if project is None or branch is None:
        return dict(project_name=None, branch_name=None, is_production=False,
                    project_flow_name=None)  # fmt: skip
    return dict(
        project_name=project,
        branch_name=branch,
        is_production=is_production_branch(branch),
        project_flow_name=project_flow_name(project, branch, flow_name),
    )
