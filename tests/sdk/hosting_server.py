"""`ledgerflow host serve` as the hosting tests start it (a process on a free loopback
port), and a client that answers (status, JSON or text, headers)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

SERVICES = Path(__file__).parent / "services"
TALK_SERVICE = SERVICES / "talk_service.py"


@contextmanager
def hosting(
    flow_env: Any,
    flow: str,
    *options: str,
    service: Path = TALK_SERVICE,
    log: list[str] | None = None,
) -> Iterator[str]:
    """The server of `service` for `flow` (with `options`); yields its base URL. Each
    line it writes to stderr goes to `log`."""
    lines = log if log is not None else []
    process = subprocess.Popen(
        [sys.executable, "-m", "ledgerflow", "host", "serve", str(service), "--flow", flow,
         "--port", "0", *options],
        env={**flow_env.env, "USERNAME": "tester"}, cwd=flow_env.home,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert process.stderr is not None
        for line in process.stderr:
            lines.append(line)
            started = re.match(r"serving \w+ on (http://\S+)", line)
            if started:
                url = started.group(1)
                break
        else:
            raise AssertionError(f"the server did not start (exit {process.wait()}):\n{lines}")
        threading.Thread(target=_keep, args=(process.stderr, lines), daemon=True).start()
        yield url
    finally:
        process.terminate()
        process.wait(timeout=20)


def _keep(stream: Any, lines: list[str]) -> None:
    for line in stream:  # each line as it comes, for the tests that wait for one
        lines.append(line)


def call(url: str, body: bytes | None = None) -> tuple[int, Any, dict[str, str]]:
    """GET `url`, or POST `body`: the status, the answer (JSON, else text), the headers."""
    request = urllib.request.Request(url, data=body, method="POST" if body is not None else "GET")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status, raw, headers = response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as error:
        status, raw, headers = error.code, error.read(), dict(error.headers)
    is_json = headers.get("content-type", "").startswith("application/json")
    return status, json.loads(raw) if is_json else raw.decode(), headers


def post(url: str, value: Any) -> tuple[int, Any, dict[str, str]]:
    """POST `value` as JSON."""
    return call(url, json.dumps(value).encode())
