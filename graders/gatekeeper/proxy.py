"""The gatekeeper: a private Docker endpoint for one submission, in front of the real daemon.

The submission's kernel gets ``DOCKER_HOST=unix://<socket>``; each request is read up to its
head, judged by the ``Policy``, and then forwarded with its bytes piped both ways, so streamed
bodies and hijacked attach/exec connections pass through. When the submission ends, closing
the gatekeeper removes everything the submission owns.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import threading
from contextlib import nullcontext
from pathlib import Path
from urllib.parse import urlsplit

import docker
from docker.errors import APIError, NotFound

from ..daemon_lock import removing_images
from ..errors import DaemonUnavailable
from ..settings import GATEKEEPER_LABEL
from ..sweep import Removed, remove_namespace
from .http import (
    MAX_HEAD,
    BadRequest,
    json_response,
    read_body,
    read_request,
    read_response,
    stream_error,
)
from .policy import Answer, Forward, Policy
from .rules import Limits, Refused

CHUNK = 64 * 1024


def default_upstream() -> str:
    return os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                half_close: bool, observe=None) -> None:
    """Copy bytes until the reader ends; pass the end on as a half-close when asked to."""
    try:
        while data := await reader.read(CHUNK):
            if observe is not None:
                observe(data)
            writer.write(data)
            await writer.drain()
        if half_close and writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        pass


class Gatekeeper:
    """One submission's endpoint: start it, hand ``docker_host`` to the kernel, close it."""

    def __init__(self, namespace: str, scratch: Path, *, upstream: str | None = None,
                 limits: Limits | None = None, client_uid: int | None = None) -> None:
        self.namespace = namespace
        self.scratch = Path(scratch)
        self.upstream = upstream or default_upstream()
        self.limits = limits or Limits()
        #: The only user (besides root) who may connect: a confined kernel's. Anyone else
        #: finds the socket in /proc/net/unix and could act as this submission.
        self.client_uid = client_uid
        self.refusals: list[str] = []
        self._folder = Path(tempfile.mkdtemp(prefix="course-gatekeeper-"))
        self.socket_path = self._folder / "docker.sock"
        try:
            self._client = docker.DockerClient(base_url=self.upstream, version="auto",
                                               timeout=60)
            self.policy = Policy(namespace, self.scratch, self._client, self.limits)
        except docker.errors.DockerException as error:
            shutil.rmtree(self._folder, ignore_errors=True)
            raise DaemonUnavailable(
                f"the gatekeeper cannot reach the daemon at {self.upstream}: {error}") from None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopped: asyncio.Event | None = None
        self._connections: set[asyncio.Task] = set()

    @property
    def docker_host(self) -> str:
        return f"unix://{self.socket_path}"

    def __enter__(self) -> Gatekeeper:
        self.start()
        return self

    def __exit__(self, *_) -> None:
        self.close()

    def start(self) -> None:
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            try:
                self._loop.run_until_complete(self._main(ready))
            except BaseException as error:  # surfaced to start() below
                failure.append(error)
                ready.set()
            finally:
                self._loop.close()

        self._thread = threading.Thread(target=run, name=f"gatekeeper-{self.namespace}",
                                        daemon=True)
        self._thread.start()
        ready.wait(30)
        if failure:
            raise failure[0]

    async def _main(self, ready: threading.Event) -> None:
        self._stopped = asyncio.Event()
        server = await asyncio.start_unix_server(self._serve, path=str(self.socket_path),
                                                 limit=MAX_HEAD)
        if self.client_uid is None:
            os.chmod(self._folder, 0o711)
            os.chmod(self.socket_path, 0o666)
        else:
            os.chown(self._folder, self.client_uid, self.client_uid)
            os.chmod(self._folder, 0o700)
            os.chown(self.socket_path, self.client_uid, self.client_uid)
            os.chmod(self.socket_path, 0o600)
        ready.set()
        async with server:
            await self._stopped.wait()
            server.close()
            for task in list(self._connections):
                task.cancel()
            await asyncio.gather(*self._connections, return_exceptions=True)

    def close(self) -> Removed:
        """Stop serving, then remove everything the submission owns, whatever its state."""
        if self._loop is not None and self._stopped is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stopped.set)
            self._thread.join(30)
        try:
            return self.clean()
        finally:
            self._client.close()
            shutil.rmtree(self._folder, ignore_errors=True)

    def clean(self) -> Removed:
        """Remove what carries the label, then the image names the submission gave out.

        Removing a name only untags when the image has others (a course image it aliased).
        """
        removed = remove_namespace(self._client, self.namespace, label=GATEKEEPER_LABEL)
        if self.policy.references or self.policy.image_ids:
            with removing_images():
                self._remove_own_images(removed)
        return removed

    def _remove_own_images(self, removed: Removed) -> None:
        for reference in sorted(self.policy.references):
            try:
                self._client.api.remove_image(reference)
                removed.images.append(reference)
            except NotFound:
                pass
            except APIError as error:
                removed.failures.append(f"{reference}: {error.explanation or error}")
        for short_id in sorted(self.policy.image_ids):
            try:  # build steps left untagged; one a later build reuses from cache stays
                if self._client.api.inspect_image(short_id).get("RepoTags"):
                    # Its own names are gone, so these are someone else's: another submission
                    # that built alike got the same image from the build cache. Removing it by
                    # id would take that name too (an image with one name goes without force).
                    continue
                self._client.api.remove_image(short_id)
                removed.images.append(short_id)
            except (NotFound, APIError):
                pass

    async def _open_upstream(self):
        parts = urlsplit(self.upstream)
        if parts.scheme in ("unix", "http+unix"):
            return await asyncio.open_unix_connection(parts.path, limit=MAX_HEAD)
        return await asyncio.open_connection(parts.hostname, parts.port, limit=MAX_HEAD)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        self._connections.add(task)
        try:
            await self._exchange(reader, writer)
        except asyncio.CancelledError:
            pass
        except (ConnectionError, OSError, asyncio.IncompleteReadError):
            pass
        finally:
            self._connections.discard(task)
            writer.close()

    async def _exchange(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await read_request(reader)
            if request is None:
                return
            handler, names, needs_body = self.policy.route(request)
            if needs_body:
                body = await read_body(reader, request.headers)
                decision = await asyncio.to_thread(handler, request, body, *names)
            else:
                decision = await asyncio.to_thread(handler, request, *names)
        except Refused as refusal:
            writer.write(self._refusal(refusal))
            await writer.drain()
            return
        except (BadRequest, ValueError) as error:
            writer.write(json_response(400, {"message": f"gatekeeper: {error}"}).encode())
            await writer.drain()
            return
        except docker.errors.DockerException as error:
            writer.write(json_response(502, {"message": f"gatekeeper: {error}"}).encode())
            await writer.drain()
            return
        if isinstance(decision, Answer):
            writer.write(decision.response.encode())
            await writer.drain()
            return
        await self._forward(decision, reader, writer)

    def _refusal(self, refusal: Refused) -> bytes:
        """The answer to a refused request, noted for the submission's outcome."""
        self.refusals.append(str(refusal))
        return (stream_error(str(refusal)) if refusal.in_stream else
                json_response(refusal.status, {"message": str(refusal)})).encode()

    async def _forward(self, decision: Forward, reader: asyncio.StreamReader,
                       writer: asyncio.StreamWriter) -> None:
        request = decision.request
        if not request.upgrades:
            request = request.with_header("Connection", "close")
        if decision.body is not None:
            request = request.with_header("Transfer-Encoding", None).with_header(
                "Content-Length", str(len(decision.body)))
        hold = decision.hold() if decision.hold is not None else nullcontext()
        await asyncio.to_thread(hold.__enter__)
        try:
            await self._exchange_upstream(decision, request, reader, writer)
        finally:
            hold.__exit__(None, None, None)

    async def _exchange_upstream(self, decision: Forward, request, reader: asyncio.StreamReader,
                                 writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await self._open_upstream()
        try:
            up_writer.write(request.encode() + (decision.body or b""))
            await up_writer.drain()
            upload = asyncio.ensure_future(_pipe(reader, up_writer, request.upgrades))
            try:
                if decision.transform is None:
                    await _pipe(up_reader, writer, half_close=False, observe=decision.observe)
                else:
                    try:
                        answer = decision.transform(await read_response(up_reader)).encode()
                    except Refused as refusal:  # a check made on the daemon's answer
                        answer = self._refusal(refusal)
                    writer.write(answer)
                    await writer.drain()
            finally:
                upload.cancel()
            if decision.after is not None:
                await asyncio.to_thread(decision.after)
        finally:
            up_writer.close()
