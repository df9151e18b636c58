"""`course`: the one front door for instructors and maintainers.

Each subcommand turns its flags into arguments, calls one library function and renders what it
returns. Library errors (CourseError) become one ERROR line and what to do about it.
"""

from __future__ import annotations

import functools
import logging
import sys
import warnings
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from .errors import CourseError
from .settings import project_root

console = Console(stderr=False, highlight=False)
STATUS_STYLE = {"graded": "green", "already graded": "green", "timed out": "yellow",
                "kernel died": "yellow", "invalid notebook": "red",
                "infrastructure error": "bold red"}


def _quiet_libraries(verbose: bool) -> None:
    """nbgrader, the kernel machinery and SQLAlchemy log freely; show that only with -v."""
    if verbose:
        logging.basicConfig(level=logging.INFO)
        return
    warnings.filterwarnings("ignore")
    handler = logging.StreamHandler()
    # nbgrader resets its loggers' levels, so filter where records are written, not at source.
    handler.setLevel(logging.CRITICAL)
    logging.basicConfig(handlers=[handler])


def reports_errors(command):
    """Print a CourseError as one ERROR line plus its remedy and exit 1; let real crashes show."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except CourseError as error:
            console.print(f"[bold red]ERROR[/] {error.message}")
            if error.remedy:
                console.print(f"[dim]what to do:[/] {error.remedy}")
            sys.exit(1)

    return wrapper


def _step(message: str) -> None:
    console.print(f"[cyan]•[/] {message}")


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Show the libraries' own logs.")
@click.version_option(package_name="docker-course")
def main(verbose: bool) -> None:
    """A Docker course in Jupyter notebooks, graded automatically."""
    _quiet_libraries(verbose)


@main.command()
@click.option("--log-dir", type=click.Path(path_type=Path), default=None,
              help="Where dockerd's log goes if it has to be started [default: ./logs].")
@click.option("--engine", type=click.Choice(["auto", "system", "20.10", "26.1"]),
              default="auto", envvar="COURSE_ENGINE", show_default=True, show_envvar=True,
              help="Docker Engine to run on: 20.10 (Debian 12's docker.io) or 26.1 (Debian "
                   "13's), installed from the other release if need be; system: this Debian "
                   "release's own; auto keeps the one there, or installs 26.1. A running "
                   "dockerd is replaced only if `course` started it.")
@click.option("--image-store", type=click.Choice(["classic", "containerd"]), default=None,
              envvar="COURSE_IMAGE_STORE", show_envvar=True,
              help="Where Engine 26.1 keeps images: its classic graph driver or containerd's "
                   "snapshotters (written to /etc/docker/daemon.json) [default: as configured].")
@reports_errors
def setup(log_dir: Path | None, engine: str, image_store: str | None) -> None:
    """Find or start a Docker daemon and provide the course images, offline if need be."""
    from .provision import provision

    done = provision(log_dir or project_root() / "logs", on_step=_step, engine=engine,
                     image_store=image_store)
    console.print(f"[green]ready[/] daemon: {done.daemon.summary}")
    console.print(f"  {done.engine}")
    for image in done.images:
        console.print(f"  {image.name}: {image.how} ({image.seconds:.1f} s)")


@main.command()
def doctor() -> None:
    """Check the daemon, the course images and the Python tools; say how to fix each problem."""
    from .doctor import diagnose

    checks = diagnose()
    table = Table("check", "", "detail", "remedy", box=None)
    for check in checks:
        mark = "[green]ok[/]" if check.ok else "[red]FAIL[/]"
        table.add_row(check.name, mark, check.detail, "" if check.ok else check.remedy)
    console.print(table)
    failed = [c for c in checks if not c.ok]
    console.print(f"{len(checks) - len(failed)} of {len(checks)} checks passed")
    sys.exit(1 if failed else 0)


@main.command()
@reports_errors
def images() -> None:
    """Make sure the course images exist: use, pull, or build them from host binaries."""
    from .daemon import docker_client
    from .images import ensure_images

    client = docker_client()
    try:
        for image in ensure_images(client, on_step=_step):
            console.print(f"{image.name}: {image.how} ({image.seconds:.1f} s)")
    finally:
        client.close()


@main.command()
@click.option("--check", is_flag=True,
              help="Only report generated files that are stale; exit 1 if any.")
@reports_errors
def release(check: bool) -> None:
    """Regenerate release/, notebooks/ and the sample submissions from source/."""
    from . import release as releasing

    root = project_root()
    if check:
        stale = releasing.stale_files(root)
        for path in stale:
            console.print(f"[red]stale[/] {path}")
        console.print("generated files are fresh" if not stale
                      else f"{len(stale)} stale: run `course release`")
        sys.exit(1 if stale else 0)
    result = releasing.release(root)
    console.print(f"released {', '.join(result.assignments) or 'nothing'} "
                  f"({len(result.files)} files)")


def _grading_options(cell_timeout, timeout, force, students, db, feedback, workers=None,
                     scheduler=None, gatekeeper=True, max_containers=None):
    from .grading import GradingOptions

    return GradingOptions(cell_timeout=cell_timeout, submission_timeout=timeout, force=force,
                          students=list(students) or None, db_url=db, feedback=feedback,
                          workers=workers, scheduler=scheduler, gatekeeper=gatekeeper,
                          limits={"max_containers": max_containers} if max_containers else {})


def _print_batch(batch, table_of_students: bool = True) -> None:
    from collections import Counter

    if table_of_students:
        table = Table("student", "score", "status", "seconds", "detail")
        for r in batch.results:
            score = "-" if r.score is None else f"{r.score:g} / {r.max_score:g}"
            style = STATUS_STYLE.get(r.status.value, "")
            table.add_row(r.student, score, f"[{style}]{r.status.value}[/]", f"{r.seconds:.1f}",
                          r.detail)
        console.print(table)
    counts = Counter(r.status.value for r in batch.results)
    statuses = Table("status", "submissions", title=f"{batch.assignment}: "
                     f"{len(batch.results)} submissions in {batch.seconds:.0f} s "
                     f"on {batch.workers} workers")
    for status, count in counts.most_common():
        statuses.add_row(f"[{STATUS_STYLE.get(status, '')}]{status}[/]", str(count))
    console.print(statuses)
    slowest = sorted((r for r in batch.results if r.seconds), key=lambda r: -r.seconds)[:5]
    if slowest:
        console.print("slowest: " + ", ".join(f"{r.student} {r.seconds:.1f} s" for r in slowest))
    console.print(f"grades: {batch.grades_csv}")
    console.print(f"statuses: {batch.status_csv}")
    console.print(f"feedback: {batch.feedback_dir}/<student>/{batch.assignment}/")
    if batch.strays:
        shown = ", ".join(batch.strays[:8]) + (" …" if len(batch.strays) > 8 else "")
        console.print(f"[yellow]note[/] {len(batch.strays)} objects appeared on the daemon "
                      f"during the run that the batch did not provably create, so they were "
                      f"left alone: {shown}")


class _ProgressBar:
    """A progress bar with done/total, rate and ETA, fed by the library's callbacks."""

    def __init__(self) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.progress = Progress(TextColumn("{task.description}"), BarColumn(),
                                 MofNCompleteColumn(), TextColumn("{task.fields[rate]}"),
                                 TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                                 console=console, transient=False, refresh_per_second=2)
        self.task = None

    def start(self, total: int, workers: int) -> None:
        if self.task is None:
            self.progress.start()
            self.task = self.progress.add_task(f"grading on {workers} workers", total=total,
                                               rate="")
        else:  # the next assignment of the same run
            self.progress.update(self.task, total=self.progress.tasks[0].total + total)

    def result(self, result) -> None:
        if self.task is None:
            return
        self.progress.advance(self.task)
        task = self.progress.tasks[0]
        rate = task.completed / task.elapsed * 60 if task.elapsed else 0
        self.progress.update(self.task, rate=f"{rate:.1f}/min")
        if result.status.value not in ("graded", "already graded"):
            self.progress.console.print(f"  {result.student}: [yellow]{result.status.value}[/] "
                                        f"{result.detail}")

    def stop(self) -> None:
        self.progress.stop()


grading_flags = [
    click.option("--cell-timeout", type=click.IntRange(min=1), default=None,
                 help="Seconds per cell [default: nbgrader_config.py's Execute.timeout, else "
                      "30]."),
    click.option("--timeout", default=300, show_default=True,
                 help="Seconds per submission, all cells together."),
    click.option("--force", is_flag=True, help="Regrade submissions already graded."),
    click.option("--student", "students", multiple=True, help="Grade only these students."),
    click.option("--db", default=None, help="Gradebook SQLAlchemy URL [default: SQLite in the "
                 "course folder]."),
    click.option("--feedback/--no-feedback", default=True, show_default=True,
                 help="Write feedback HTML (hidden tests removed)."),
    click.option("--workers", type=click.IntRange(min=1), default=None,
                 help="Worker processes [default: two per core, and one more per core while "
                      "the cores idle]."),
    click.option("--scheduler", default=None, metavar="tcp://HOST:PORT",
                 help="Grade on this Dask cluster instead; each worker uses its node's daemon."),
    click.option("--gatekeeper/--no-gatekeeper", default=True, show_default=True,
                 help="Give each submission its own gatekeeper to the daemon. Turn it off only "
                      "for trusted notebooks: without it a submission can do anything as root."),
    click.option("--max-containers", type=click.IntRange(min=1), default=None,
                 help="Containers one submission may have at once [default: 20]."),
]


def with_grading_flags(command):
    for flag in reversed(grading_flags):
        command = flag(command)
    return command


@main.command()
@click.argument("assignments", nargs=-1, required=True)
@click.option("--course-dir", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="The nbgrader course folder holding source/ and submitted/ [default: repo].")
@click.option("--write-release", is_flag=True,
              help="Also write the generated release into release/ (by default release/, which "
                   "students may already have fetched, is left as it is).")
@with_grading_flags
@reports_errors
def grade(assignments, course_dir, write_release, cell_timeout, timeout, force, students, db,
          feedback, workers, scheduler, gatekeeper, max_containers) -> None:
    """Autograde the submissions of each ASSIGNMENT in submitted/<student>/ASSIGNMENT/.

    Several assignments share one pool of warm workers. Interrupted or not, run the same command
    again to carry on: recorded submissions are not graded twice.
    """
    import signal

    from .grading import grade_assignments

    # A terminated run stops like an interrupted one: in-flight namespaces swept, work recorded.
    # Ctrl-C too, even when started from a shell that ignores it (nohup, `&` in a script).
    for stop in (signal.SIGINT, signal.SIGTERM):
        signal.signal(stop, signal.default_int_handler)
    bar = _ProgressBar()
    try:
        options = _grading_options(cell_timeout, timeout, force, students, db, feedback, workers,
                                   scheduler, gatekeeper, max_containers)
        options.write_release = write_release
        batches = grade_assignments(course_dir or project_root(), list(assignments), options,
                                    on_start=bar.start, on_result=bar.result)
    finally:
        bar.stop()
    for batch in batches:
        _print_batch(batch, table_of_students=len(batch.results) <= 50)


def _course_root(course_dir: Path | None) -> Path:
    return (course_dir or project_root()).resolve()


classroom_flags = [
    click.option("--course-dir", type=click.Path(path_type=Path, file_okay=False), default=None,
                 help="The nbgrader course folder [default: repo]."),
    click.option("--db", default=None, help="Gradebook SQLAlchemy URL [default: "
                 "nbgrader_config.py's, else SQLite in the course folder]."),
]
exchange_flag = click.option(
    "--exchange", type=click.Path(path_type=Path, file_okay=False), default=None,
    help="nbgrader's exchange folder [default: nbgrader_config.py's Exchange.root, else "
         "/srv/nbgrader/exchange].")


def with_classroom_flags(command):
    for flag in reversed(classroom_flags):
        command = flag(command)
    return command


def _print_collected(collected) -> None:
    console.print(f"collected {len(collected.students)} submissions of {collected.assignment}"
                  + (f": {', '.join(collected.students)}" if collected.students else ""))
    for student, left in collected.left_out.items():
        console.print(f"[yellow]left out[/] of {student}'s submission: {', '.join(left)}")
    for warning in collected.warnings:
        console.print(f"[yellow]note[/] {warning}")


@main.command("release-assignment")
@click.argument("assignment")
@with_classroom_flags
@exchange_flag
@click.option("--regenerate", is_flag=True,
              help="Generate release/ASSIGNMENT from source/ again even if it exists.")
@click.option("--force", is_flag=True,
              help="Replace the assignment already in the exchange (students may have "
                   "fetched it).")
@reports_errors
def release_assignment(assignment, course_dir, db, exchange, regenerate, force) -> None:
    """Put ASSIGNMENT in nbgrader's exchange for students to fetch (generated if need be)."""
    from .classroom import release_assignment as put_out
    from .nbgrader_env import gradebook_url

    root = _course_root(course_dir)
    where = put_out(root, gradebook_url(root, db), assignment, exchange, regenerate, force)
    console.print(f"released {assignment}: {where}")


@main.command()
@click.argument("assignment")
@with_classroom_flags
@exchange_flag
@click.option("--update/--no-update", default=True, show_default=True,
              help="Replace a collected submission by a newer one.")
@reports_errors
def collect(assignment, course_dir, db, exchange, update) -> None:
    """Copy students' latest submissions of ASSIGNMENT from the exchange into submitted/.

    Symbolic links in a submission are left out and named, never followed.
    """
    from .classroom import collect as collect_submissions
    from .nbgrader_env import gradebook_url

    root = _course_root(course_dir)
    _print_collected(collect_submissions(root, gradebook_url(root, db), assignment, exchange,
                                         update))


@main.command("collect-zip")
@click.argument("assignment")
@click.argument("downloads", nargs=-1, required=True,
                type=click.Path(path_type=Path, dir_okay=False, exists=True))
@with_classroom_flags
@click.option("--file-names", default=None, metavar="REGEXP",
              help="How to read a student id and notebook name from each file's path "
                   "(groups student_id, file_id) [default: nbgrader_config.py's "
                   "FileNameCollectorPlugin.named_regexp, else Canvas's file names].")
@click.option("--force", is_flag=True,
              help="Clear what an earlier collect-zip of ASSIGNMENT extracted and collected.")
@reports_errors
def collect_zip(assignment, downloads, course_dir, db, file_names, force) -> None:
    """Collect an LMS's downloaded submissions (zips or files) of ASSIGNMENT into submitted/."""
    from .classroom import collect_zip as collect_downloads
    from .nbgrader_env import gradebook_url

    root = _course_root(course_dir)
    _print_collected(collect_downloads(root, gradebook_url(root, db), assignment,
                                       list(downloads), file_names, force))


@main.command("release-feedback")
@click.argument("assignment")
@with_classroom_flags
@exchange_flag
@click.option("--student", "students", multiple=True, help="Only these students.")
@reports_errors
def release_feedback(assignment, course_dir, db, exchange, students) -> None:
    """Hand graded students their feedback on ASSIGNMENT through the exchange."""
    from .classroom import release_feedback as hand_back
    from .nbgrader_env import gradebook_url

    root = _course_root(course_dir)
    released = hand_back(root, gradebook_url(root, db), assignment, exchange,
                         list(students) or None)
    console.print(f"feedback released to {len(released.students)} students"
                  + (f": {', '.join(released.students)}" if released.students else ""))
    for student, why in released.skipped.items():
        console.print(f"[yellow]not released[/] {student}: {why}")


@main.command()
@with_classroom_flags
@click.option("--to", "formats", multiple=True, default=("nbgrader", "canvas"),
              type=click.Choice(["nbgrader", "canvas"]), show_default=True,
              help="Which files to write.")
@click.option("--canvas-id", "canvas_ids", multiple=True, metavar="ASSIGNMENT=ID",
              help="The Canvas assignment an nbgrader assignment's column goes to (without "
                   "one Canvas creates a new assignment).")
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Folder for the files [default: exports/ in the course folder].")
@reports_errors
def export(course_dir, db, formats, canvas_ids, out) -> None:
    """Write the gradebook's grades for an LMS: nbgrader's grades.csv, a Canvas import CSV."""
    from .exports import write_canvas_csv, write_grades_csv
    from .nbgrader_env import gradebook_url

    root = _course_root(course_dir)
    url, out = gradebook_url(root, db), out or root / "exports"
    ids = dict(item.split("=", 1) for item in canvas_ids if "=" in item)
    if len(ids) != len(canvas_ids):
        raise click.BadParameter("write each as ASSIGNMENT=ID", param_hint="--canvas-id")
    if "nbgrader" in formats:
        console.print(f"nbgrader CSV: {write_grades_csv(url, out / 'grades.csv')}")
    if "canvas" in formats:
        console.print(f"Canvas import: {write_canvas_csv(url, out / 'canvas.csv', ids)}")


@main.command()
@click.option("--namespace", default="learner", show_default=True,
              help="Whose objects this endpoint stamps, shows and cleans up.")
@click.option("--scratch", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="The one folder containers may bind-mount [default: ./work/scratch].")
@click.option("--max-containers", type=click.IntRange(min=1), default=20, show_default=True)
@reports_errors
def gatekeeper(namespace: str, scratch: Path | None, max_containers: int) -> None:
    """Serve a gatekeeper endpoint in front of the daemon until Ctrl-C, showing its refusals.

    The endpoint grading gives every submission, for trying out: point DOCKER_HOST at it and
    see what a privileged container or a bind mount of / gets. Ctrl-C removes everything
    created through it.
    """
    import signal
    import time

    from .gatekeeper import Gatekeeper, Limits

    for stop in (signal.SIGINT, signal.SIGTERM):
        signal.signal(stop, signal.default_int_handler)
    scratch = (scratch or Path.cwd() / "work" / "scratch").resolve()
    scratch.mkdir(parents=True, exist_ok=True)
    gate = Gatekeeper(namespace, scratch, limits=Limits(max_containers=max_containers))
    gate.start()
    console.print(f"gatekeeper for namespace [bold]{namespace}[/], bind mounts only under "
                  f"{scratch}; in another shell:")
    click.echo(f"export DOCKER_HOST={gate.docker_host}")
    shown = 0

    def show_refusals() -> None:
        nonlocal shown
        for refusal in gate.refusals[shown:]:
            console.print(f"[yellow]refused[/] {refusal}")
        shown = len(gate.refusals)

    try:
        while True:
            time.sleep(0.5)
            show_refusals()
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not stop the cleanup
        show_refusals()
        removed = gate.close()
        console.print(f"removed {removed.total} objects of namespace {namespace}")


@main.command()
@click.option("--work-dir", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Folder for the demo's gradebook and results [default: ./work/demo].")
@click.option("--log-dir", type=click.Path(path_type=Path), default=None,
              help="Where dockerd's log goes if it has to be started [default: ./logs].")
@reports_errors
def demo(work_dir: Path | None, log_dir: Path | None) -> None:
    """Provision, release, and grade the bundled sample submissions; print the results."""
    from .demo import run_demo
    from .provision import provision

    root = project_root()
    provision(log_dir or root / "logs", on_step=_step)
    work = work_dir or root / "work" / "demo"
    bar = _ProgressBar()
    try:
        batch = run_demo(root, work, on_start=bar.start, on_result=bar.result)
    finally:
        bar.stop()
    _print_batch(batch)
    console.print(f"gradebook: {work / 'gradebook.db'}")


@main.command()
@click.option("--course-dir", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="The course folder [default: repo].")
@click.option("--db", default=None, help="Gradebook SQLAlchemy URL [default: SQLite there].")
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Where to write the page [default: exports/report.html].")
@reports_errors
def report(course_dir: Path | None, db: str | None, out: Path | None) -> None:
    """Write an HTML report: score distributions, pass rate per cell, common failures."""
    from .nbgrader_env import gradebook_url
    from .report import write_report

    root = _course_root(course_dir)
    path = write_report(root, gradebook_url(root, db),
                        out or root / "exports" / "report.html")
    console.print(f"report: {path}")


@main.command()
@click.option("--course-dir", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="The course repository [default: this one].")
@click.option("--notebook", "notebooks", multiple=True, help="Check only these assignments.")
@click.option("--no-grading", is_flag=True,
              help="Skip grading the solution and the release (fast checks only).")
@reports_errors
def validate(course_dir: Path | None, notebooks: tuple[str, ...], no_grading: bool) -> None:
    """Check the course as its CI should; exit 1 with a list of problems naming each cell."""
    from .validate import validate as run_checks

    problems = run_checks((course_dir or project_root()).resolve(), list(notebooks) or None,
                          grading=not no_grading, on_step=_step)
    for problem in problems:
        console.print(f"[red]problem[/] {problem}")
    console.print("the course is valid" if not problems else f"{len(problems)} problems")
    sys.exit(1 if problems else 0)


@main.command()
@click.option("--port", default=8888, show_default=True, help="Port on 127.0.0.1.")
@click.option("--check/--no-check", default=True, show_default=True,
              help="Check the daemon and the course images first.")
def lab(port: int, check: bool) -> None:
    """Open the self-paced notebooks in JupyterLab, after checking Docker is ready."""
    import os
    import secrets

    from .doctor import preflight
    from .jupyter import lab_command, lab_url

    if check:
        problems = preflight()
        for problem in problems:
            console.print(f"[bold red]ERROR[/] {problem.name}: {problem.detail}")
            console.print(f"[dim]what to do:[/] {problem.remedy}")
        if problems:
            sys.exit(1)
    token = secrets.token_hex(16)
    console.print(f"JupyterLab: {lab_url(port, token)}")
    command = lab_command(project_root() / "notebooks", port, token)
    os.execv(command[0], command)
