"""Telling people about finished runs of deployments (@notify): a thread of every
service process claims the notifications that are due, sends them from a small pool
of threads, and records each attempt's result.

A notification is requested in the transaction that finishes its run
(``triggers.py``). Sending it is at least once: a replica claims it with a
NotificationSending event (under the append lock, so two replicas never claim the same
attempt), sends, and records a NotificationResult; an undelivered one is tried again
with backoff (``read_models/notifications.py``), and one whose sender died mid-attempt
is claimed again once the claim runs out. A hanging webhook or command holds one pool
thread until its timeout, never the service: appends, the scheduler and the other
notifications go on.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import signal
import subprocess
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from ledgerflow.engine.deployments import trigger_name
from ledgerflow.v1 import events_pb2, records_pb2

from ledgerflow_service.errors import FailedPrecondition
from ledgerflow_service.orchestration.service_thread import ServiceThread
from ledgerflow_service.principal import SERVICE
from ledgerflow_service.queries import notifications as notification_queries
from ledgerflow_service.read_models.notifications import MAX_ATTEMPTS, NotificationRow
from ledgerflow_service.store.append import Append, AppendChosen
from ledgerflow_service.store.backend import Database, Tx

log = logging.getLogger(__name__)

# Notifications sent at once by one service process.
DEFAULT_SENDERS = 8
DEFAULT_TIMEOUT_SECONDS = 10.0
# How often the sender looks for due notifications when nothing woke it.
_POLL_SECONDS = 1.0
# A claim outlives its attempt's timeout by this much (seconds).
_CLAIM_GRACE_SECONDS = 30
# The sender records results and claims at most this often (a burst of quick webhooks
# is recorded in a few transactions, not one each).
_MIN_ROUND_SECONDS = 0.05
# The result recorded for an attempt whose sender stopped before saying how it went.
_ABANDONED = "no result: the service sending it stopped mid-attempt (the claim ran out)"
# The most of a receiver's answer kept in the ledger.
_DETAIL_CHARS = 300


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _DETAIL_CHARS else text[: _DETAIL_CHARS - 3] + "..."


@functools.cache
def _opener_without_redirects() -> Any:
    """urllib's opener, refusing redirects (made when first needed: urllib.request and
    http.client cost every run on the embedded ledger ~15 ms to import)."""
    import urllib.request

    class RefuseRedirects(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None  # urllib then raises HTTPError with the 3xx

    return urllib.request.build_opener(RefuseRedirects)


class NotificationDesk:
    """Claims, sends and records notifications (see the module doc)."""

    def __init__(
        self,
        database: Database,
        append: Append,
        append_chosen: AppendChosen,
        now_us: Callable[[], int],
        *,
        allow_commands: bool = False,
        timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
        senders: int = DEFAULT_SENDERS,
    ) -> None:
        self.database = database
        self._append = append
        self._append_chosen = append_chosen
        self._now_us = now_us
        self.allow_commands = allow_commands
        self.timeout_seconds = timeout_seconds
        self._senders = senders
        self._pool = ThreadPoolExecutor(senders, thread_name_prefix="ledgerflow-notify")
        self._in_flight = 0
        # Results of ended attempts, recorded with the next claims in one transaction.
        self._results: list[events_pb2.Event] = []
        self._lock = threading.Lock()
        # Set when an attempt ends: a sender is free.
        self.wake = threading.Event()

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def send_due(self) -> list[Future[None]]:
        """Records the results of the attempts that ended and claims what is due (as
        many as there are free senders), in one transaction, then sends each claimed
        notification from the pool; returns those attempts, each done once its result
        is waiting to be recorded (by the next call, or :meth:`flush`)."""
        results = self._take_results()
        with self._lock:
            free = self._senders - self._in_flight
        now = self._now_us()
        if not results:  # most rounds: nothing ended, nothing due; no write transaction
            with self.database.read() as tx:
                if not self._sendable(notification_queries.due(tx, now, free)):
                    return []
        claimed: list[tuple[NotificationRow, int]] = []

        def choose(tx: Tx) -> list[events_pb2.Event]:
            claimed.clear()
            events = list(results)
            for row in self._sendable(notification_queries.due(tx, now, free)):
                if row.state == "sending":  # its sender stopped mid-attempt
                    events.append(self._result(row, row.attempts, False, _ABANDONED))
                    if row.attempts >= MAX_ATTEMPTS:
                        continue
                claimed.append((row, row.attempts + 1))
                events.append(self._claim(row, row.attempts + 1))
            return events

        try:
            self._append_chosen(choose, SERVICE)
        except Exception:
            if not results:
                raise
            # Record the results each on its own (one may be refused: its claim ran out
            # and another replica took the notification over); claim at the next call.
            self._record_each(results)
            return []
        attempts = []
        for row, attempt in claimed:
            with self._lock:
                self._in_flight += 1
            attempts.append(self._pool.submit(self._attempt, row, attempt))
        return attempts

    def flush(self) -> None:
        """Records the results of the attempts that ended."""
        self._record_each(self._take_results())

    def _sendable(self, rows: list[NotificationRow]) -> list[NotificationRow]:
        """`rows` less the commands, on a replica that does not run them (they wait for
        one that does, rather than use up their attempts here)."""
        if self.allow_commands:
            return rows
        return [row for row in rows if not row.notify().command]

    def _claim(self, row: NotificationRow, attempt: int) -> events_pb2.Event:
        flow_name, run_id = row.run_pathspec.split("/")
        return events_pb2.Event(
            # A fresh id: the append lock, not idempotence, keeps a claim single.
            event_id=str(uuid.uuid4()),
            notification_sending=events_pb2.NotificationSending(
                flow_name=flow_name, run_id=run_id, notification=row.notification,
                attempt=attempt, claim_seconds=int(self.timeout_seconds) + _CLAIM_GRACE_SECONDS,
            ),
        )  # fmt: skip

    @staticmethod
    def _result(
        row: NotificationRow, attempt: int, delivered: bool, detail: str
    ) -> events_pb2.Event:
        flow_name, run_id = row.run_pathspec.split("/")
        result = events_pb2.NotificationResult(
            flow_name=flow_name, run_id=run_id, notification=row.notification,
            attempt=attempt, delivered=delivered, detail=_short(detail),
        )  # fmt: skip
        return events_pb2.Event(event_id=str(uuid.uuid4()), notification_result=result)

    def _take_results(self) -> list[events_pb2.Event]:
        with self._lock:
            results, self._results = self._results, []
        return results

    def _record_each(self, results: list[events_pb2.Event]) -> None:
        """Records each result on its own: one the ledger refuses (its claim was taken
        over) is dropped; one that could not be recorded (the database is away) waits
        for the next round."""
        for result in results:
            found = result.notification_result
            try:
                self._append([result], SERVICE)
            except FailedPrecondition as error:
                log.warning("notification %s/%s/%s: result dropped: %s", found.flow_name,
                            found.run_id, found.notification, error.message)  # fmt: skip
            except Exception:
                log.exception("notification %s/%s/%s: result kept for the next round",
                              found.flow_name, found.run_id, found.notification)  # fmt: skip
                with self._lock:
                    self._results.append(result)

    def _attempt(self, row: NotificationRow, attempt: int) -> None:
        try:
            delivered, detail = self.deliver(row, attempt)
        except Exception as error:  # a bug here must not lose the claim's result
            log.exception("sending notification %s/%s failed", row.run_pathspec,
                          row.notification)  # fmt: skip
            delivered, detail = False, f"{type(error).__name__}: {error}"
        with self._lock:
            self._results.append(self._result(row, attempt, delivered, detail))
            self._in_flight -= 1
        self.wake.set()

    # ---- sending --------------------------------------------------------------------

    def deliver(self, row: NotificationRow, attempt: int) -> tuple[bool, str]:
        """Sends one notification: (delivered, what happened)."""
        facts = self.facts(row, attempt)
        notify = row.notify()
        if notify.webhook:
            return self._post(notify.webhook, facts)
        if not self.allow_commands:
            return False, "this service does not run commands (--allow-notify-commands)"
        return self._run(notify.command, facts)

    def facts(self, row: NotificationRow, attempt: int) -> dict[str, Any]:
        """What a receiver is told: the run, how it ended, and what started it."""
        flow_name, run_id = row.run_pathspec.split("/")
        facts: dict[str, Any] = dict(
            flow=flow_name, run_id=run_id, pathspec=row.run_pathspec,
            outcome=row.outcome, deployment=row.deployment,
            notification=row.notification, attempt=attempt,
        )  # fmt: skip
        with self.database.read() as tx:
            found = notification_queries.run_facts(tx, row.run_pathspec)
        if found is not None:
            finished_us, trigger_message, error = found
            if finished_us is not None:
                facts["finished_at"] = datetime.fromtimestamp(finished_us / 1e6, UTC).isoformat()
            if trigger_message:
                facts["trigger"] = trigger_name(
                    records_pb2.Trigger.FromString(bytes(trigger_message)).kind
                )
            if error:
                facts["error"] = error
        return facts

    def _post(self, url: str, facts: dict[str, Any]) -> tuple[bool, str]:
        import urllib.error
        import urllib.request

        request = urllib.request.Request(
            url, data=json.dumps(facts).encode(), method="POST",
            headers={"Content-Type": "application/json", "User-Agent": "ledgerflow-notify"},
        )  # fmt: skip
        try:
            opener = _opener_without_redirects()
            with opener.open(request, timeout=self.timeout_seconds) as response:
                return True, f"HTTP {response.status}"
        except urllib.error.HTTPError as error:
            if 300 <= error.code < 400:  # a POST redirected would arrive as a bodiless GET
                return False, f"HTTP {error.code}: redirects are not followed (give the final URL)"
            body = error.read(_DETAIL_CHARS).decode(errors="replace")
            return False, f"HTTP {error.code}" + (f": {body}" if body.strip() else "")
        except TimeoutError:
            return False, f"timed out after {self.timeout_seconds:g} s"
        except urllib.error.URLError as error:
            reason = error.reason
            if isinstance(reason, TimeoutError):
                return False, f"timed out after {self.timeout_seconds:g} s"
            return False, f"could not reach {url}: {reason}"
        except OSError as error:
            return False, f"could not reach {url}: {error}"

    def _run(self, command: str, facts: dict[str, Any]) -> tuple[bool, str]:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": os.environ.get("HOME", "/"),
            "LANG": os.environ.get("LANG", "C.UTF-8"),
            **{f"LEDGERFLOW_{key.upper()}": str(value) for key, value in facts.items()},
        }
        process = subprocess.Popen(
            ["sh", "-c", command], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, env=env, start_new_session=True,
        )  # fmt: skip
        try:
            _, stderr = process.communicate(json.dumps(facts).encode(), self.timeout_seconds)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)  # the command and whatever it started
            process.communicate()
            return False, f"timed out after {self.timeout_seconds:g} s (killed)"
        last = stderr.decode(errors="replace").strip().splitlines()[-1:] or [""]
        detail = f"exit status {process.returncode}"
        if process.returncode != 0 and last[0]:
            detail += f": {last[0]}"
        return process.returncode == 0, detail


class Notifier(ServiceThread):
    """Sends due notifications from a thread of the service (see the module doc)."""

    def __init__(self, desk: NotificationDesk) -> None:
        super().__init__("ledgerflow-notifier", desk.wake)
        self.desk = desk

    def stop(self) -> None:
        super().stop()
        self.desk.close()

    def loop(self) -> None:
        while not self.stopping.is_set():
            self.desk.wake.clear()
            try:
                self.desk.send_due()
            except Exception:  # a database hiccup: try again at the next poll
                log.exception("claiming due notifications failed")
            self.stopping.wait(_MIN_ROUND_SECONDS)
            self.desk.wake.wait(_POLL_SECONDS)
        try:
            self.desk.flush()
        except Exception:  # the claims run out: another replica sends them again
            log.exception("recording the last notification results failed")
