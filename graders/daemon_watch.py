"""Noticing that the Docker daemon went away while a submission ran.

Tests that fail because the daemon restarted would otherwise be recorded as the student's
fault. A watcher pings the daemon in the background for the whole execution; any failed ping
turns the submission's outcome into an infrastructure error, which is retried, never scored.
"""

from __future__ import annotations

import threading
from types import TracebackType

import docker


class DaemonWatch:
    """A context manager that pings the daemon every ``interval`` seconds while it is open.

    One client and its kept-alive connection serve every ping: a fresh client per ping asked
    the daemon for its version too, which doubled the calls of every worker, twice a second.
    """

    def __init__(self, interval: float = 0.5, timeout: float = 3) -> None:
        self.interval = interval
        self.timeout = timeout
        self.outage = ""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._client: docker.APIClient | None = None

    def __enter__(self) -> DaemonWatch:
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join(timeout=self.timeout + self.interval)
        self._ping()  # also catches an outage shorter than one interval at the very end
        if self._client is not None:
            self._client.close()

    def _watch(self) -> None:
        while not self._stop.wait(self.interval):
            self._ping()

    def _ping(self) -> None:
        try:
            if self._client is None:
                self._client = docker.from_env(timeout=self.timeout).api
            self._client.ping()
        except Exception as error:  # any failure to answer counts as an outage
            if not self.outage:
                self.outage = f"the Docker daemon stopped answering during execution ({error})"
