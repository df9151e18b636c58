"""How busy the cores this process may use are: what lets the pool start extra submissions.

A worker running a hanging cell, or waiting for a kernel or the daemon, holds its slot while
the cores idle. Reading the kernel's CPU counters shows that idleness as it happens.
"""

from __future__ import annotations

import os
from pathlib import Path

STAT = Path("/proc/stat")


class CoreLoad:
    """The busy share of the usable cores between one reading and the next.

    Reads ``/proc/stat`` (Linux); where it cannot, it reports the cores full, so that nothing
    runs beyond the steady number of workers on a guess.
    """

    def __init__(self, stat: Path = STAT) -> None:
        cpus = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set()
        self._stat = stat
        self._names = {f"cpu{n}" for n in cpus}
        self._last = self._read()

    def _read(self) -> tuple[int, int] | None:
        """Busy and total clock ticks of the usable cores, summed."""
        try:
            lines = self._stat.read_text().splitlines()
        except OSError:
            return None
        busy = total = 0
        for line in lines:
            name, *fields = line.split()
            if name in self._names:
                ticks = [int(field) for field in fields[:8]]  # guest time is inside user
                total += sum(ticks)
                busy += sum(ticks) - ticks[3] - ticks[4]  # idle, iowait
        return (busy, total) if total else None

    def busy_share(self) -> float:
        """From 0 (idle) to 1 (every usable core busy), since the previous reading."""
        now, last = self._read(), self._last
        self._last = now
        if now is None or last is None or now[1] <= last[1]:
            return 1.0
        return (now[0] - last[0]) / (now[1] - last[1])
