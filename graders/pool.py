"""Where grading tasks run: a pool of long-lived local processes, or a Dask cluster.

Both give the coordinator the same three operations (submit, as_completed, close), so the
coordinator does not care whether a worker is a child process or a node with its own daemon.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
from collections.abc import Iterable, Iterator

from .errors import GradingError
from .tasks import GradingTask
from .worker import grade_task, warm_up


def default_workers() -> int:
    """What this machine can carry: two workers per core, memory permitting.

    A worker spends much of each submission waiting (kernel start-up, the daemon starting
    containers, a hanging cell running out its time limit), so more workers than cores keep the
    cores busy: on 2 cores, 12 perfect 06-exec submissions took 50.4 s on 3 workers, 45.6 s on
    4 and 44.9 s on 5 (docs/scaling.md). Past that they only share the same CPU, and stretch
    every cell towards its time limit.
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    try:
        memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError):
        memory_gib = 4
    return max(1, min(2 * (cores or 1), int(memory_gib // 1)))


class LocalPool:
    """Long-lived worker processes on this machine, all using this machine's daemon."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._executor = concurrent.futures.ProcessPoolExecutor(
            max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
            initializer=warm_up)
        # The executor spawns a process per submit while none is idle: start them all now, so
        # their imports overlap with the coordinator's preparation instead of following it.
        for _ in range(workers):
            self._executor.submit(int)

    def submit(self, task: GradingTask):
        return self._executor.submit(grade_task, task)

    def as_completed(self, futures: Iterable) -> Iterator:
        return concurrent.futures.as_completed(list(futures))

    def close(self, cancel: bool = False) -> None:
        if cancel:
            for process in list(getattr(self._executor, "_processes", {}).values()):
                process.terminate()
        self._executor.shutdown(wait=not cancel, cancel_futures=cancel)


class DaskPool:
    """An existing Dask cluster; each of its workers grades on its own node's daemon."""

    def __init__(self, address: str) -> None:
        try:
            from distributed import Client
        except ImportError:
            raise GradingError("--scheduler needs Dask distributed",
                               remedy="pip install 'docker-course[dask]'") from None
        try:
            self._client = Client(address, timeout="10s")
        except OSError as error:
            raise GradingError(f"cannot reach the Dask scheduler at {address}: {error}",
                               remedy="Check the address and that the scheduler runs.") from None
        self.workers = len(self._client.scheduler_info().get("workers", {}))

    def submit(self, task: GradingTask):
        return self._client.submit(grade_task, task, pure=False)

    def as_completed(self, futures: Iterable) -> Iterator:
        from distributed import as_completed

        return iter(as_completed(list(futures)))

    def close(self, cancel: bool = False) -> None:
        self._client.close()
