"""A loop that runs on a thread of every service process (the scheduler, the
notifications' sender): started with the server, woken early through an event,
stopped when the service shuts down."""

from __future__ import annotations

import threading


class ServiceThread:
    """Runs :meth:`loop` on a daemon thread until :meth:`stop`; the loop waits on
    `wake`, which stop() sets so that it notices at once."""

    def __init__(self, name: str, wake: threading.Event) -> None:
        self.name = name
        self.woken = wake
        self.stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self.loop, name=self.name, daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self.stopping.set()
        self.woken.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def loop(self) -> None:
        raise NotImplementedError
