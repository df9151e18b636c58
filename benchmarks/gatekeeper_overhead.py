"""Benchmark: what the gatekeeper adds to executing each notebook, against direct daemon access.

Each notebook's solution runs through the grader's own execute step (papermill parameters, a
fresh kernel, the sweep) with the kernel talking to the daemon directly, and through a
gatekeeper; runs alternate so both sides share the machine's noise, and the median of
``--repeats`` runs is compared. The confined kernel is off on both sides: this measures the
gatekeeper alone. Target: under 10% per notebook.

    .venv/bin/python benchmarks/gatekeeper_overhead.py --notebooks 02-containers 14-dockerfile
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import docker
import nbformat

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from graders import settings  # noqa: E402
from graders.gatekeeper import Gatekeeper  # noqa: E402
from graders.namespace import Namespace  # noqa: E402
from graders.preprocessors import ExecuteParameterized  # noqa: E402
from graders.release import source_assignments  # noqa: E402


def execute_seconds(notebook: str, gatekeeper: bool, run: int) -> float:
    """Execute the solution once; fail loudly if any cell errs (the comparison would be void)."""
    nb = nbformat.read(str(ROOT / "source" / notebook / f"{notebook}.ipynb"), 4)
    namespace = Namespace.for_submission(notebook, f"bench{run}{int(gatekeeper)}").value
    with tempfile.TemporaryDirectory(prefix="course-bench-") as scratch:
        execute = ExecuteParameterized(
            timeout=120, namespace=namespace, gatekeeper=gatekeeper, confine=False,
            scratch_dir=scratch,
            parameters={"NAMESPACE": namespace, "BUSYBOX_IMAGE": settings.BUSYBOX_IMAGE,
                        "REGISTRY_IMAGE": settings.REGISTRY_IMAGE, "SCRATCH_DIR": scratch})
        started = time.monotonic()
        nb, _ = execute.preprocess(nb, {"metadata": {"path": scratch}})
        seconds = time.monotonic() - started
    errors = [(c.get("id"), o.get("ename")) for c in nb.cells for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    if errors:
        raise SystemExit(f"{notebook} failed {'through' if gatekeeper else 'without'} the "
                         f"gatekeeper: {errors}")
    return seconds


def per_call_milliseconds(client: docker.DockerClient, name: str) -> dict[str, float]:
    """Typical calls, timed one by one: what a request costs with and without the gatekeeper."""
    container = client.containers.run(settings.BUSYBOX_IMAGE, ["sleep", "120"], detach=True,
                                      name=name)
    calls = {"reload": (container.reload, 50), "list": (client.containers.list, 20),
             "exec": (lambda: container.exec_run("true"), 10),
             "run --rm": (lambda: client.containers.run(settings.BUSYBOX_IMAGE, ["true"],
                                                        remove=True), 5)}
    timings = {}
    try:
        for call, (action, times) in calls.items():
            started = time.monotonic()
            for _ in range(times):
                action()
            timings[call] = 1000 * (time.monotonic() - started) / times
    finally:
        container.remove(force=True)
    return timings


def compare_calls() -> None:
    direct = per_call_milliseconds(docker.from_env(), "course-bench-direct")
    with tempfile.TemporaryDirectory() as scratch, \
            Gatekeeper("benchcalls01", Path(scratch)) as gate:
        gated = per_call_milliseconds(docker.DockerClient(base_url=gate.docker_host),
                                      "course-bench-gated")
    print("per call, ms:  " + "  ".join(f"{call} {direct[call]:.1f} -> {gated[call]:.1f}"
                                        for call in direct))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notebooks", nargs="+", default=source_assignments(ROOT))
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    compare_calls()
    print(f"{'notebook':28} {'direct s':>9} {'gatekeeper s':>13} {'added':>7}")
    ratios = []
    for notebook in args.notebooks:
        direct, gated = [], []
        for run in range(args.repeats):
            direct.append(execute_seconds(notebook, False, run))
            gated.append(execute_seconds(notebook, True, run))
        plain, through = statistics.median(direct), statistics.median(gated)
        ratios.append(through / plain)
        print(f"{notebook:28} {plain:9.2f} {through:13.2f} {100 * (through / plain - 1):+6.1f}%",
              flush=True)
    print(f"median added time: {100 * (statistics.median(ratios) - 1):+.1f}% "
          f"(worst {100 * (max(ratios) - 1):+.1f}%), target under +10%")


if __name__ == "__main__":
    main()
