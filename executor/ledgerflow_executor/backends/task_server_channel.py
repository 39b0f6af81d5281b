"""The executor's end of a warm task server's pipes (the protocol is in
ledgerflow/runtime/task_server.py): asks for attempts and kills, and relays what the
server says, on a thread of its own, to the backend that keeps the server (the local
backend's servers are processes here; a warm container's server runs in a container)."""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Callable, Sequence
from typing import Any

from ledgerflow_executor.backends.base import Launch


def attempt_request(
    launch: Launch,
    *,
    memory_bytes: int,
    cgroup: str = "",
    cores: Sequence[int] = (),
    env: dict[str, str] | None = None,
    cwd: str = "",
) -> dict[str, Any]:
    """The request that starts `launch` on a task server (its fields are explained in
    ledgerflow/runtime/task_server.py); `env`: the attempt's, when not launch.env."""
    return {
        "spec": launch.spec_path, "result": launch.result_path,
        "stdout": launch.stdout_path, "stderr": launch.stderr_path,
        "memory_bytes": memory_bytes, "cgroup": cgroup, "cores": list(cores),
        "env": launch.env if env is None else env, "gpus": len(launch.gpu_ids), "cwd": cwd,
    }  # fmt: skip


class TaskServerGone(Exception):
    """The server's stdin no longer takes requests: the server (or its container) ended."""


class TaskServerChannel:
    """Writes requests to a task server's stdin; from `listen()` on, a thread reads its
    stdout and calls `on_started(pid)` and `on_exited(pid, code)` as it speaks, then
    `on_gone()` once it has said all it will (it ended)."""

    def __init__(
        self,
        process: subprocess.Popen[str],
        *,
        on_started: Callable[[int], None],
        on_exited: Callable[[int, int], None],
        on_gone: Callable[[], None],
    ) -> None:
        self.process = process
        self._on_started, self._on_exited, self._on_gone = on_started, on_exited, on_gone
        self._write_lock = threading.Lock()

    def listen(self) -> None:
        """Starts relaying what the server says (once whoever keeps it can be told)."""
        threading.Thread(target=self._listen, name="lf-task-server", daemon=True).start()

    def ask(self, request: dict[str, Any]) -> None:
        """Sends one request (an attempt to start, or {"kill": PID})."""
        assert self.process.stdin is not None
        try:
            with self._write_lock:
                self.process.stdin.write(json.dumps(request) + "\n")
                self.process.stdin.flush()
        except (OSError, ValueError) as error:  # ValueError: stdin already closed
            raise TaskServerGone(str(error)) from None

    def alive(self) -> bool:
        return self.process.poll() is None

    def close_stdin(self) -> None:
        """The server kills what still runs and exits."""
        try:
            if self.process.stdin is not None:
                with self._write_lock:
                    self.process.stdin.close()
        except OSError:
            pass

    def exited_within(self, seconds: float) -> bool:
        try:
            self.process.wait(timeout=max(0.0, seconds))
        except subprocess.TimeoutExpired:
            return False
        return True

    def close(self, wait_seconds: float = 10) -> None:
        """Closes its stdin and waits for it to exit; kills it when it does not."""
        self.close_stdin()
        if not self.exited_within(wait_seconds):
            self.process.kill()

    def _listen(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            try:
                message = json.loads(line)
            except json.JSONDecodeError:  # something the flow's import printed
                continue
            if "started" in message:
                self._on_started(int(message["started"]))
            elif "exited" in message:
                self._on_exited(int(message["exited"]), int(message["code"]))
        self._on_gone()
