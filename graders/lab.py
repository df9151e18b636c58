"""Small helpers the notebooks import: connecting, labelling, probing and resetting.

Kept deliberately few so that a learner reads Docker SDK calls in the exercises, not ours.
"""

from __future__ import annotations

import concurrent.futures
import logging
import time
import warnings

import docker
from docker.errors import APIError, DockerException, NotFound

from .engines import image_store
from .errors import DaemonUnavailable
from .settings import NAMESPACE_LABEL
from .sweep import remove_namespace


def quiet() -> None:
    """Silence warnings and library logging: any stderr output in a graded cell scores 0."""
    warnings.filterwarnings("ignore")
    logging.getLogger("docker").setLevel(logging.ERROR)
    logging.getLogger("urllib3").setLevel(logging.ERROR)


def connect(timeout: int = 60) -> docker.DockerClient:
    """A client for the daemon DOCKER_HOST (or the current context) points at, checked to answer."""
    try:
        client = docker.from_env(timeout=timeout)
        client.ping()
    except DockerException as error:
        raise DaemonUnavailable(
            f"No Docker daemon answers ({error}). "
            "Start Docker Desktop or dockerd, or set DOCKER_HOST, then re-run this cell."
        ) from None
    return client


def containerd_image_store(client: docker.DockerClient) -> bool:
    """Whether the daemon keeps its images in containerd's store (Engine 24 and later can):
    image ids, sizes, `docker save` archives and pushes then differ from the classic store's."""
    return image_store(client.info()) == "containerd"


def labels(namespace: str, **extra: str) -> dict[str, str]:
    """The labels every object of ``namespace`` carries, plus any extra ones."""
    return {NAMESPACE_LABEL: namespace, **extra}


def reset(client: docker.DockerClient, namespace: str) -> int:
    """Remove every container, network, volume and image labelled with ``namespace``.

    Returns how many objects were removed. Safe to call at any time: objects of other
    namespaces and the course's images are never touched.
    """
    return remove_namespace(client, namespace).total


def remove_container(client: docker.DockerClient, name: str, timeout: float = 15) -> None:
    """Remove the container called ``name`` (and its anonymous volumes) if it exists.

    A busy daemon may answer 409 while an earlier removal (say, of an auto-removed container)
    is still under way: wait for that one to finish rather than fail.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            client.api.remove_container(name, force=True, v=True)
            return
        except NotFound:
            return
        except APIError as error:
            if error.status_code != 409 or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def exec_text(container, command: str | list[str]) -> tuple[int, str]:
    """Run ``command`` in a running container; return its exit code and combined output."""
    result = container.exec_run(command)
    return result.exit_code, result.output.decode(errors="replace")


def exec_until(container, command: str | list[str], accept, attempts: int = 3) -> tuple[int, str]:
    """Run ``command`` in ``container`` until ``accept(code, output)`` holds, ``attempts`` times
    at most; the last (code, output). A busy daemon now and then loses the whole output of an
    exec that ends at once (docker-py issue 2042): a probe asks again rather than fail on that."""
    for attempt in range(attempts):
        code, output = exec_text(container, command)
        if accept(code, output):
            break
        time.sleep(0.2 * (attempt + 1))
    return code, output


def read_text(container, command: str | list[str], attempts: int = 5) -> tuple[int, str]:
    """``exec_text`` for a command that only reads (``cat``, ``env``, ``stat``...), asked again
    while its output is empty (see ``exec_until``): a check must not fail on a lost output."""
    return exec_until(container, command, lambda _code, output: bool(output), attempts)


def call_with_timeout(timeout: float, function, *args, **kwargs):
    """Call ``function`` in a worker thread; raise TimeoutError if it has not returned in time.

    docker-py's ``wait``, ``logs(stream=True)``, ``attach`` and ``events`` can block forever;
    the thread cannot be killed, so the caller ends what it waits on (e.g. removes the
    container) in a ``finally``. At grading time a learner's function is called in the
    learner's kernel, which the grader interrupts itself (graders.judging).
    """
    if hasattr(function, "call_within"):
        return function.call_within(timeout, *args, **kwargs)
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    try:
        return pool.submit(function, *args, **kwargs).result(timeout=timeout)
    except concurrent.futures.TimeoutError:
        raise TimeoutError(f"{function.__name__} did not return within {timeout} s") from None
    finally:
        pool.shutdown(wait=False)


def _found(inspect, name: str) -> bool:
    try:
        inspect(name)
        return True
    except NotFound:
        return False


def container_exists(client: docker.DockerClient, name: str) -> bool:
    """Whether a container called exactly ``name`` exists (a name filter also matches parts)."""
    return _found(client.api.inspect_container, name)


def volume_exists(client: docker.DockerClient, name: str) -> bool:
    """Whether a volume called ``name`` exists."""
    return _found(client.api.inspect_volume, name)


def requests_made(client: docker.DockerClient) -> list[dict] | None:
    """The requests this submission's kernel made, as its gatekeeper recorded them (method,
    path, the daemon's status; a login's registry and user), or None outside grading.

    At grading time this is what a check relies on to know that a lesson's call was really
    made: the kernel cannot change the record.
    """
    try:
        answer = client.api.get(client.api.base_url + "/_course/journal", timeout=10)
    except (DockerException, OSError, ValueError):
        return None
    if answer.status_code != 200:
        return None
    try:
        journal = answer.json()
    except ValueError:
        return None
    return journal if isinstance(journal, list) else None


def requests_on(client: docker.DockerClient, container, action: str) -> list[dict] | None:
    """The requests this submission made to ``/containers/<container>/<action>`` (``attach``,
    ``exec``...), naming ``container`` by name or id, or None outside grading."""
    journal = requests_made(client)
    if journal is None:
        return None
    return [entry for entry in journal
            if _names_container(str(entry.get("path", "")), container, action)]


def _names_container(path: str, container, action: str) -> bool:
    parts = path.split("/")
    if len(parts) != 4 or parts[:2] != ["", "containers"] or parts[3] != action:
        return False
    reference = parts[2]
    return bool(reference) and (reference == container.name or container.id.startswith(reference))
