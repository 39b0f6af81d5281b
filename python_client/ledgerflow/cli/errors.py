"""The one place where the SDK's command lines turn errors into one-line messages."""

from __future__ import annotations

import functools
import os
import sqlite3
import sys
from collections.abc import Callable
from typing import Any

import click

from ledgerflow.exceptions import LedgerflowException


def _quiet_exit() -> None:
    """Leaves without writing to the closed pipe (Python would warn at exit)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    sys.exit(0)


def friendly_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turns ledger and input errors into one-line CLI errors (no traceback)."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except BrokenPipeError:  # `... | head`: the reader has what it wanted
            _quiet_exit()
        except LedgerflowException as error:  # RpcError, ResumeError, ...
            raise click.ClickException(str(error)) from None
        except (ValueError, KeyError) as error:
            raise click.ClickException(str(error).strip("'\"")) from None
        except sqlite3.Error as error:
            raise click.ClickException(f"the embedded ledger failed: {error}") from None
        except OSError as error:  # e.g. LEDGERFLOW_HOME is not a usable folder
            raise click.ClickException(
                f"cannot use {error.filename}: {error.strerror} (check LEDGERFLOW_HOME and "
                "LEDGERFLOW_DATASTORE_ROOT)"
            ) from None

    return wrapper
