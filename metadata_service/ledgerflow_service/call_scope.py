"""How long one request may keep the database busy, and whether its caller still waits.

A query that outlives its caller is pure harm: it holds a connection and a core that
live callers need, and it can hold up a shutdown. Every request therefore carries a
:class:`CallScope`: a deadline (the caller's gRPC deadline, capped by the server's own
statement timeout) and a cancellation flag the transport sets when the caller goes
away. The database turns the deadline into a statement timeout and, on cancellation,
interrupts the statement that is running (Postgres: a cancel request; SQLite: an
interrupt), so no query runs longer than the caller waits for it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

# The longest any one statement may run, whatever the caller's deadline
# (``ledgerflow service --statement-timeout``).
DEFAULT_STATEMENT_TIMEOUT_SECONDS = 30.0


class CallScope:
    """The time budget and the cancellation of one request. Thread-safe: the
    transport cancels it from its own thread while a worker thread queries."""

    def __init__(
        self,
        deadline: float | None = None,
        *,
        cap_seconds: float = DEFAULT_STATEMENT_TIMEOUT_SECONDS,
    ) -> None:
        """`deadline` is a ``time.monotonic()`` value (None: the caller waits forever,
        so only the cap applies)."""
        capped = time.monotonic() + cap_seconds
        self.deadline = capped if deadline is None else min(deadline, capped)
        self.caller_deadline = deadline
        self._cancelled = threading.Event()
        self._lock = threading.Lock()
        self._hooks: list[Callable[[], None]] = []

    @classmethod
    def unbounded(cls) -> CallScope:
        """For in-process callers (embedded mode, maintenance commands): only the cap."""
        return cls(None, cap_seconds=24 * 3600.0)

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def remaining(self) -> float:
        """Seconds left before the deadline (negative once it passed)."""
        return self.deadline - time.monotonic()

    def expired(self) -> bool:
        return self.cancelled or self.remaining() <= 0

    def still_wanted(self) -> bool:
        """Whether the caller still waits for the result (asked before a commit)."""
        if self.cancelled:
            return False
        return self.caller_deadline is None or self.caller_deadline > time.monotonic()

    def cancel(self) -> None:
        """The caller went away: interrupt whatever statement is running for it."""
        # Under the lock, so that a statement's block cannot end (and hand its
        # connection to another request) while its interrupt is on the way.
        with self._lock:
            if self._cancelled.is_set():
                return
            self._cancelled.set()
            for hook in self._hooks:
                hook()

    @contextmanager
    def interruptible(self, interrupt: Callable[[], None]) -> Iterator[None]:
        """Calls `interrupt()` (from the cancelling thread) if the scope is cancelled
        while the block runs; at once if it already was."""
        with self._lock:
            self._hooks.append(interrupt)
            already = self._cancelled.is_set()
        try:
            if already:
                interrupt()
            yield
        finally:
            with self._lock:
                self._hooks.remove(interrupt)
