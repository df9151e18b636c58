"""Where grading tasks run: a pool of long-lived local processes, or a Dask cluster.

Both give the coordinator the same operations (admits, submit, finished, close), so the
coordinator does not care whether a worker is a child process or a node with its own daemon.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
import time
from collections.abc import Iterable

from .core_load import CoreLoad
from .errors import GradingError
from .tasks import GradingTask
from .worker import HEAVY_MODULES, grade_task, warm_up


def default_workers() -> int:
    """What this machine can carry: two workers per core, memory permitting.

    A worker spends much of each submission waiting (kernel start-up, the daemon starting
    containers, a hanging cell running out its time limit), so more workers than cores keep the
    cores busy: on 2 cores, 12 perfect 06-exec submissions took 50.4 s on 3 workers, 45.6 s on
    4 and 44.9 s on 5 (docs/scaling.md). Past that they only share the same CPU, and stretch
    every cell towards its time limit.
    """
    return max(1, min(2 * _cores(), int(_memory_gib())))


def default_extra_workers() -> int:
    """Workers beyond the steady ones, started only while the cores idle: one per core.

    With the steady workers all busy, a hanging submission or a slow kernel start leaves the
    cores idle; an extra submission fills them. Started only on measured idleness, they do not
    stretch the cells of CPU-bound notebooks the way more steady workers would.
    """
    return max(0, min(_cores(), int(_memory_gib()) - default_workers()))


def _cores() -> int:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return cores or 1


def _memory_gib() -> float:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError):
        return 4


def _worker_context() -> multiprocessing.context.BaseContext:
    """Workers forked from a server that imported the grading machinery once for all of them.

    Each spawned worker imported it on its own (~1 CPU-second each, all at the start of a run,
    when the coordinator prepares too); a fork server imports it once and forks workers from
    that clean, single-threaded process. Its workers watch the coordinator through a pidfd
    (see ``worker.warm_up``); where there is none (not Linux 5.3+), they are spawned as
    children of the coordinator, which the parent-death signal covers.
    """
    if "forkserver" not in multiprocessing.get_all_start_methods() or not _pidfds():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(list(HEAVY_MODULES))
    return context


def _pidfds() -> bool:
    try:
        os.close(os.pidfd_open(os.getpid()))
    except (AttributeError, OSError):
        return False
    return True


def local_pool(workers: int | None = None) -> LocalPool:
    """``workers`` fixed, or by default the steady workers plus the extra ones."""
    if workers:
        return LocalPool(workers)
    return LocalPool(default_workers(), default_extra_workers())


#: Below this busy share of the cores, an extra submission may start. Measured here with the
#: steady workers busy: CPU-bound notebooks (images) keep 0.93-0.95 of 2 cores busy, notebooks
#: that wait on containers and kernels 0.75-0.80, and hanging ones far less.
IDLE_BELOW = 0.9
#: Seconds over which the load is read, so at most one extra start per this many seconds: the
#: last one's kernel must show up in the load before the next is decided.
LOAD_WINDOW = 2.0


class Admission:
    """Whether one more submission may start: always below ``steady``, and up to ``extra`` more
    while the cores idle."""

    def __init__(self, steady: int, extra: int, load: CoreLoad | None) -> None:
        self.steady, self.ceiling, self.load = steady, steady + extra, load
        self._read_at = time.monotonic()

    def allows(self, running: int) -> bool:
        if running < self.steady:
            return True
        if running >= self.ceiling or self.load is None:
            return False
        if time.monotonic() - self._read_at < LOAD_WINDOW:
            return False
        self._read_at = time.monotonic()
        return self.load.busy_share() < IDLE_BELOW


class LocalPool:
    """Long-lived worker processes on this machine, all using this machine's daemon.

    ``workers`` submissions run at all times; up to ``extra`` more while the cores idle.
    """

    def __init__(self, workers: int, extra: int = 0) -> None:
        self.workers = workers + extra
        self._admission = Admission(workers, extra, CoreLoad() if extra else None)
        self._executor = concurrent.futures.ProcessPoolExecutor(
            max_workers=self.workers, mp_context=_worker_context(), initializer=warm_up,
            initargs=(os.getpid(),))
        # The executor starts a process per submit while none is idle: start them all now, so
        # they are ready by the time the coordinator has prepared the assignments.
        for _ in range(self.workers):
            self._executor.submit(int)

    def admits(self, running: int) -> bool:
        """Whether one more submission may start while ``running`` are graded."""
        return self._admission.allows(running)

    def submit(self, task: GradingTask):
        return self._executor.submit(grade_task, task)

    def finished(self, futures: Iterable, timeout: float) -> set:
        """The futures done within ``timeout`` seconds (as soon as one is)."""
        return concurrent.futures.wait(list(futures), timeout=timeout,
                                       return_when=concurrent.futures.FIRST_COMPLETED).done

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

    def admits(self, running: int) -> bool:
        """Always: the scheduler queues tasks, and each node paces its own workers."""
        return True

    def submit(self, task: GradingTask):
        return self._client.submit(grade_task, task, pure=False)

    def finished(self, futures: Iterable, timeout: float) -> set:
        from distributed import wait

        try:
            return set(wait(list(futures), timeout=timeout, return_when="FIRST_COMPLETED").done)
        except TimeoutError:
            return set()

    def close(self, cancel: bool = False) -> None:
        self._client.close()
