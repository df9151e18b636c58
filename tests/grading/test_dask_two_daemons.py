"""Past one machine: a Dask scheduler and two workers, each worker with a Docker daemon of its own.

The scheduler and the workers are separate processes started with Dask's own command line, as
an instructor would start them on several nodes; each worker's DOCKER_HOST names a side daemon
(graders.side_daemon: its own socket, data root, containerd, and network namespace with its own
bridge). What shows where each submission was graded is the daemons' own event logs, read
afterwards: every solved submission's container was created on exactly one of the two side
daemons, both daemons did work, and the main daemon saw none of it. The scores equal those of
the local pool.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from contextlib import ExitStack, closing
from pathlib import Path

import builders as b
import docker
import pytest

from graders.grading import GradingOptions, grade_assignment
from graders.namespace import Namespace
from graders.preprocessors.execute_parameterized import JUDGE_SUFFIX
from graders.release import generate_release

pytestmark = [pytest.mark.docker, pytest.mark.slow]
SOLVED, BLANK = 4, 1


def _why_not() -> str | None:
    if sys.platform != "linux" or os.geteuid() != 0:
        return "a second dockerd needs Linux and root"
    return None


def _class(root: Path) -> Path:
    """Four solved submissions (each starts a container named after its namespace), one blank."""
    b.course_folder(root, b.mini_source())
    generate_release(root, root / "release", assignments=[b.MINI])
    for index in range(SOLVED):
        b.submit(root, f"solved{index}", b.solved(root))
    for index in range(BLANK):
        b.submit(root, f"blank{index}", b.released(root))
    return root


def _scores(batch) -> dict[str, tuple[str, float | None]]:
    return {r.student: (r.status.value, r.score) for r in batch.results}


def _created_containers(api: docker.DockerClient, since: int, until: int) -> list[str]:
    """Names of the containers the daemon created between the two times, from its events."""
    events = api.events(since=since, until=until, decode=True,
                        filters={"type": "container", "event": "create"})
    return [event["Actor"]["Attributes"]["name"] for event in events]


def _evidence(daemon, since: int, until: int) -> tuple[list[str], list[str]]:
    """What a side daemon created in the run, and the containers it still holds."""
    with closing(daemon.client()) as api:
        return (_created_containers(api, since, until),
                [container.name for container in api.containers.list(all=True)])


def _dask_cluster(stack: ExitStack, folder: Path, daemons: dict[str, str]) -> str:
    """Start `dask scheduler` and one `dask worker` per daemon; the scheduler's address."""
    dask = str(Path(sys.executable).parent / "dask")
    scheduler_file = folder / "scheduler.json"

    def start(argv: list[str], name: str, env: dict[str, str]) -> None:
        log = stack.enter_context(open(folder / f"{name}.log", "w"))
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env,
                                   cwd=folder)
        stack.callback(_stop, process)

    start([dask, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
           "--scheduler-file", str(scheduler_file)], "scheduler", dict(os.environ))
    for name, docker_host in daemons.items():
        start([dask, "worker", "--scheduler-file", str(scheduler_file), "--name", name,
               "--nworkers", "1", "--nthreads", "1", "--no-dashboard"], name,
              {**os.environ, "DOCKER_HOST": docker_host})
    from distributed import Client

    deadline = time.monotonic() + 60
    while not scheduler_file.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert scheduler_file.exists(), (folder / "scheduler.log").read_text()
    with Client(scheduler_file=str(scheduler_file), timeout="30s") as dask_client:
        dask_client.wait_for_workers(len(daemons), timeout=60)
        return dask_client.scheduler.address


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def test_two_dask_workers_each_grade_on_their_own_daemon(tmp_path, client, no_leftovers):
    pytest.importorskip("distributed")
    reason = _why_not()
    if reason:
        pytest.skip(reason)
    from graders.side_daemon import SideDaemon

    local = grade_assignment(_class(tmp_path / "local"), b.MINI,
                             GradingOptions(workers=2, feedback=False))
    with ExitStack() as stack:
        daemons = {name: stack.enter_context(SideDaemon(f"dask-{name}"))
                   for name in ("node-a", "node-b")}
        for daemon in daemons.values():
            daemon.provision()
        since = int(time.time()) - 1
        address = _dask_cluster(stack, tmp_path,
                                {name: d.docker_host for name, d in daemons.items()})
        on_dask = grade_assignment(_class(tmp_path / "dask"), b.MINI,  # the root named below
                                   GradingOptions(scheduler=address, feedback=False))
        until = int(time.time()) + 1
        evidence = {name: _evidence(daemon, since, until) for name, daemon in daemons.items()}
    on_main = _created_containers(client, since, until)
    created = {name: made for name, (made, _) in evidence.items()}
    left = {name: held for name, (_, held) in evidence.items()}

    assert _scores(on_dask) == _scores(local)
    assert on_dask.workers == 2
    root = tmp_path / "dask"
    # The test cell that makes the sleeper runs in the submission's judge (graders.judging).
    sleepers = {f"{Namespace.for_submission(b.MINI, f'solved{i}', salt=str(root)).value}"
                f"{JUDGE_SUFFIX}-sleeper" for i in range(SOLVED)}
    where = {name: sleepers & set(names) for name, names in created.items()}
    assert where["node-a"] and where["node-b"], f"one daemon did all the work: {created}"
    assert not where["node-a"] & where["node-b"], created
    assert where["node-a"] | where["node-b"] == sleepers, created
    assert not sleepers & set(on_main), f"the main daemon ran a Dask worker's work: {on_main}"
    assert left == {"node-a": [], "node-b": []}, f"left on the side daemons: {left}"

