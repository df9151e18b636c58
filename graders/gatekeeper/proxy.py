"""The gatekeeper: a private Docker endpoint for one submission, in front of the real daemon.

The submission's kernel gets ``DOCKER_HOST=unix://<socket>``. Every request on every
connection is parsed (``wire``), decoded against its endpoint's schema (``calls``,
``schemas``), judged by the ``Policy`` and, if allowed, written out again for the daemon from
the checked call; the daemon's answer is passed back, streamed or rewritten. When the
submission ends, closing the gatekeeper removes everything the submission owns.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import os
import shutil
import tempfile
import threading
from collections.abc import Awaitable, Callable
from contextlib import nullcontext
from pathlib import Path
from urllib.parse import urlsplit

import docker
import h11
from docker.errors import APIError, NotFound

from ..daemon_lock import removing_images
from ..errors import DaemonUnavailable
from ..settings import GATEKEEPER_LABEL
from ..sweep import Removed, remove_namespace
from .calls import Call, check_content_type, decode_auth, split_target
from .cgroups import SubmissionCgroup
from .context import MAX_CONTEXT
from .fields import decode_json, refuse
from .policy import Answer, Forward, Policy
from .rules import Limits, Refused
from .schemas import CONTEXT, MAX_STREAM, STREAM
from .wire import (
    MAX_HEAD,
    MAX_JSON_BODY,
    BadRequest,
    Client,
    Head,
    Response,
    Upstream,
    UpstreamClosed,
    content_length,
    json_response,
    passed_headers,
    pipe,
    stream_error,
)

#: Connections to the daemon kept open between requests.
IDLE_UPSTREAMS = 4
#: Where the judge's door answers with the submission's journal.
JOURNAL_PATH = "/_course/journal"
#: How many of the submission's latest requests the journal keeps: a judge asks about the
#: calls made while it waits, and a submission looping on requests must not fill the memory.
JOURNAL_ENTRIES = 50_000
#: Ends a forwarded call's own work (hold, then ``after``), given the daemon's status.
Finish = Callable[[int | None], Awaitable[None]]


def _note_call(entry: dict, call: Call) -> None:
    """What a judge may want to know of a call besides its path: the registry and user of a
    login, whether a push or pull carried credentials."""
    if call.path.endswith("/auth") and isinstance(call.body, dict):
        entry["registry"] = str(call.body.get("serveraddress", ""))
        entry["username"] = str(call.body.get("username", ""))
    entry["credentials"] = call.auth is not None


def default_upstream() -> str:
    return os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"


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
        #: Every request the submission made, with the daemon's status (or the refusal's):
        #: the evidence a judge reads of the calls a lesson is about (``GET /_course/journal``
        #: on the judge's door).
        self.journal: collections.deque[dict] = collections.deque(maxlen=JOURNAL_ENTRIES)
        self._folder = Path(tempfile.mkdtemp(prefix="course-gatekeeper-"))
        self.socket_path = self._folder / "docker.sock"
        #: The judge's own door (graders.judging): the same rules and the same objects, with
        #: its requests kept apart from the submission's.
        self.judge_socket_path = self._folder / "judge.sock"
        try:
            self._client = docker.DockerClient(base_url=self.upstream, version="auto",
                                               timeout=60)
            self.cgroup = self._cgroup()
            self.policy = Policy(namespace, self.scratch, self._client, self.limits,
                                 self.cgroup, self.upstream)
        except docker.errors.DockerException as error:
            shutil.rmtree(self._folder, ignore_errors=True)
            raise DaemonUnavailable(
                f"the gatekeeper cannot reach the daemon at {self.upstream}: {error}") from None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopped: asyncio.Event | None = None
        self._connections: set[asyncio.Task] = set()
        self._idle: list[Upstream] = []

    def _cgroup(self) -> SubmissionCgroup | None:
        """The submission's own cgroup, where the daemon is local and lets one be made."""
        if urlsplit(self.upstream).scheme not in ("unix", "http+unix"):
            return None
        driver = self._client.info().get("CgroupDriver", "")
        limits = self.limits
        return SubmissionCgroup.create(self.namespace, driver, memory=limits.total_memory,
                                       pids=limits.total_pids,
                                       build_memory=limits.memory_ceiling,
                                       build_pids=limits.pids)

    @property
    def docker_host(self) -> str:
        return f"unix://{self.socket_path}"

    @property
    def judge_docker_host(self) -> str:
        return f"unix://{self.judge_socket_path}"

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
        judge_door = await asyncio.start_unix_server(
            functools.partial(self._serve, judge=True), path=str(self.judge_socket_path),
            limit=MAX_HEAD)
        sockets = (self.socket_path, self.judge_socket_path)
        if self.client_uid is None:
            os.chmod(self._folder, 0o711)
            for path in sockets:
                os.chmod(path, 0o666)
        else:
            os.chown(self._folder, self.client_uid, self.client_uid)
            os.chmod(self._folder, 0o700)
            for path in sockets:
                os.chown(path, self.client_uid, self.client_uid)
                os.chmod(path, 0o600)
        ready.set()
        async with server, judge_door:
            await self._stopped.wait()
            server.close()
            judge_door.close()
            for task in list(self._connections):
                task.cancel()
            await asyncio.gather(*self._connections, return_exceptions=True)
            for upstream in self._idle:
                upstream.close()

    def close(self) -> Removed:
        """Stop serving, then remove everything the submission owns, whatever its state."""
        if self._loop is not None and self._stopped is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stopped.set)
            self._thread.join(30)
        try:
            return self.clean()
        finally:
            self.policy.close()
            if self.cgroup is not None:
                self.cgroup.remove()
            self._client.close()
            shutil.rmtree(self._folder, ignore_errors=True)

    def clean(self) -> Removed:
        """Remove what carries the label, the volumes made for its containers, then the image
        names the submission gave out.

        Removing a name only untags when the image has others (a course image it aliased).
        """
        removed = remove_namespace(self._client, self.namespace, label=GATEKEEPER_LABEL)
        owner = self.policy.owner
        self._remove_anonymous_volumes(removed)
        if owner.references or owner.image_ids:
            with removing_images():
                self._remove_own_images(removed)
        return removed

    def _remove_anonymous_volumes(self, removed: Removed) -> None:
        """The unlabelled volumes the daemon made for the submission's containers.

        Their containers are gone by now; one removed without its volumes left them behind.
        """
        for name in sorted(self.policy.owner.volume_names):
            try:
                self._client.api.remove_volume(name, force=True)
                removed.volumes.append(name)
            except NotFound:
                pass
            except APIError as error:
                removed.failures.append(f"{name}: {error.explanation or error}")

    def _remove_own_images(self, removed: Removed) -> None:
        owner = self.policy.owner
        for reference in sorted(owner.references):
            try:
                self._client.api.remove_image(reference)
                removed.images.append(reference)
            except NotFound:
                pass
            except APIError as error:
                removed.failures.append(f"{reference}: {error.explanation or error}")
        # Newest first, so a child goes before its parent.
        images = [owner.image(ident) for ident in owner.image_ids]
        for image in sorted((i for i in images if i), key=lambda i: i.get("Created", ""),
                            reverse=True):
            try:
                if image.get("RepoTags"):
                    # Its own names are gone, so these are someone else's: another submission
                    # that built alike got the same image from the build cache. Removing it by
                    # id would take that name too.
                    continue
                self._client.api.remove_image(image["Id"])
                removed.images.append(image["Id"])
            except (NotFound, APIError):
                pass

    async def _open_upstream(self) -> Upstream:
        parts = urlsplit(self.upstream)
        if parts.scheme in ("unix", "http+unix"):
            reader, writer = await asyncio.open_unix_connection(parts.path, limit=MAX_HEAD)
        else:
            reader, writer = await asyncio.open_connection(parts.hostname, parts.port,
                                                           limit=MAX_HEAD)
        return Upstream(reader, writer)

    # -- serving -----------------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                     judge: bool = False) -> None:
        task = asyncio.current_task()
        self._connections.add(task)
        client = Client(reader, writer, judge)
        try:
            while await self._exchange(client):
                pass
        except (asyncio.CancelledError, ConnectionError, OSError, h11.LocalProtocolError):
            pass
        except BadRequest as error:
            await self._answer_quietly(client, json_response(400, {
                "message": f"gatekeeper: malformed request ({error})"}))
        except Exception as error:  # a fault of the gatekeeper's: the submission is told
            await self._answer_quietly(client, json_response(502, {
                "message": f"gatekeeper: {type(error).__name__}: {error}"}))
        finally:
            self._connections.discard(task)
            writer.close()

    async def _answer_quietly(self, client: Client, response: Response) -> None:
        try:
            if client.h11.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                await client.answer(response, close=True)
        except (ConnectionError, OSError, h11.LocalProtocolError):
            pass

    async def _exchange(self, client: Client) -> bool:
        """Serve one request; whether the connection may carry another."""
        head = await client.request()
        if head is None:
            return False
        if client.judge and head.method == "GET" and head.target == JOURNAL_PATH:
            await client.read_all(0)
            await client.answer(json_response(200, list(self.journal)))
            return True
        entry: dict = {"method": head.method, "path": split_target(head.target)[1]}
        if not client.judge:
            self.journal.append(entry)
        try:
            call, handler, names = await self._decode(client, head)
            _note_call(entry, call)
            decision = await asyncio.to_thread(handler, call, *names)
        except Refused as refusal:
            entry["status"] = refusal.status
            return await self._refuse(client, refusal)
        except docker.errors.DockerException as error:
            await client.answer(json_response(502, {"message": f"gatekeeper: {error}"}),
                                close=True)
            return False
        if isinstance(decision, Answer):
            entry["status"] = decision.response.status
            await client.answer(decision.response, close=client.body_unread)
            return not client.body_unread
        return await self._forward(client, decision, entry)

    async def _refuse(self, client: Client, refusal: Refused) -> bool:
        """Answer a refused request, noted for the submission's outcome; an unread body ends
        the connection (its bytes are never read as a request)."""
        if not client.judge:
            self.refusals.append(str(refusal))
        response = (stream_error(str(refusal)) if refusal.in_stream else
                    json_response(refusal.status, {"message": str(refusal)}))
        close = client.body_unread
        await client.answer(response, close=close)
        return not close

    async def _decode(self, client: Client, head: Head):
        """The request as its endpoint's schema reads it, with its handler and the names in its
        path; the body is read whole unless it is streamed to the daemon."""
        version, path, pairs = split_target(head.target)
        handler, names, endpoint = self.policy.route(head.method, path)
        call = Call(head.method, version, path, endpoint, upgrade=head.upgrade and endpoint.hijack)
        if handler == self.policy.refuse_endpoint:
            if not head.has_body:
                await client.read_all(0)
            return call, handler, names
        check_content_type(head.headers.get("content-type", ""))
        call.query = endpoint.query.decode(pairs)
        if "x-registry-auth" in head.headers:
            call.auth = decode_auth(head.headers["x-registry-auth"])
        if endpoint.body == CONTEXT:
            call.body = await client.read_all(MAX_CONTEXT, "build context")
        elif endpoint.body == STREAM:
            pass  # passed on as it arrives
        else:
            # Read to the end even when empty (a POST with Content-Length: 0), so the
            # connection is ready for the client's next request.
            data = (await client.read_all(MAX_JSON_BODY)).strip()
            if endpoint.body is not None:
                call.body = decode_json(endpoint.body, data or b"{}")
            elif data not in (b"", b"{}", b"null"):  # docker-py sends {} with some
                raise refuse(f"{head.method} {path}", "takes no request body")
        return call, handler, names

    async def _forward(self, client: Client, decision: Forward, entry: dict) -> bool:
        """Pass the call on. The hold is let go and the work after it done before the client
        reads the end of the answer: what it asks next finds the operation over (a load's
        course image names put back, a reserved place given back)."""
        hold = decision.hold() if decision.hold is not None else nullcontext()
        await asyncio.to_thread(hold.__enter__)
        finished = False

        async def finish(status: int | None) -> None:
            nonlocal finished
            if not finished:
                finished = True
                hold.__exit__(None, None, None)
                if decision.after is not None:
                    await asyncio.to_thread(decision.after, status)
        status: int | None = None
        try:
            status, keep = await self._exchange_upstream(client, decision, entry, finish)
            return keep
        finally:
            if status is not None or "status" not in entry:  # keep the daemon's answer
                entry["status"] = status
            await finish(status)

    async def _exchange_upstream(self, client: Client, decision: Forward, entry: dict,
                                 finish: Finish) -> tuple[int, bool]:
        """Pass the call on; its status goes into the journal ``entry`` as soon as the daemon
        answers, so a judge sees a stream (attach, logs) while it still runs."""
        call = decision.call
        body = call.encoded_body()
        head = h11.Request(method=call.method, target=call.target,
                           headers=call.headers(len(body) if body is not None else None))
        streamed = call.endpoint.body == STREAM or call.upgrade
        upstream = None
        try:
            if not streamed and self._idle:
                # A kept connection the daemon has closed meanwhile answers nothing: the
                # request (whole, not streamed) is then sent again on a new one.
                upstream = await self._upstream()
                try:
                    answer = await self._send(client, upstream, call, head, body)
                except (UpstreamClosed, ConnectionError):
                    upstream.close()
                    upstream = None
            if upstream is None:
                upstream = await self._open_upstream()
                answer = await self._send(client, upstream, call, head, body)
            entry["status"] = answer.status_code
            if answer.status_code == 101 and call.upgrade:
                await self._hijack(client, upstream, answer)
                return 101, False
            if decision.transform is not None:
                data = await upstream.read_all(256 * 2**20, "answer")
                response = Response(answer.status_code, answer.reason.decode("latin-1"),
                                    passed_headers(answer), data)
                try:
                    response = decision.transform(response)
                except Refused as refusal:  # a check made on the daemon's answer
                    self._keep(upstream)
                    await finish(answer.status_code)
                    await self._refuse(client, refusal)
                    return answer.status_code, not client.body_unread
                self._keep(upstream)
                await finish(answer.status_code)
                await client.answer(response)
            else:
                await self._relay(client, upstream, answer, decision.observe, finish)
                self._keep(upstream)
            return answer.status_code, client.h11.our_state is h11.DONE
        except UpstreamClosed as error:
            await client.answer(json_response(502, {"message": f"gatekeeper: {error}"}),
                                close=True)
            return 502, False
        finally:
            if upstream is not None and upstream not in self._idle:
                upstream.close()

    async def _upstream(self) -> Upstream:
        """A connection to the daemon: one kept from an earlier request, or a new one."""
        while self._idle:
            kept = self._idle.pop()
            if not kept.reader.at_eof():
                return kept
            kept.close()
        return await self._open_upstream()

    async def _send(self, client: Client, upstream: Upstream, call: Call, head: h11.Request,
                    body: bytes | None):
        """Send the call (its body whole, or streamed from the client); the daemon's answer."""
        await upstream.send(head)
        if body is not None:
            await upstream.send(h11.Data(data=body))
        elif call.endpoint.body == STREAM:
            await self._stream_body(client, upstream)
        await upstream.send(h11.EndOfMessage())
        return await upstream.response()

    def _keep(self, upstream: Upstream) -> None:
        """Keep a connection whose exchange ended cleanly for the next request (a few)."""
        machine = upstream.h11
        if machine.our_state is h11.DONE and machine.their_state is h11.DONE \
                and len(self._idle) < IDLE_UPSTREAMS:
            machine.start_next_cycle()
            self._idle.append(upstream)

    async def _stream_body(self, client: Client, upstream: Upstream) -> None:
        """The client's body passed on as it arrives (image loads, imports, archives)."""
        sent = 0
        async for chunk in client.chunks():
            sent += len(chunk)
            if sent > MAX_STREAM:
                raise BadRequest(f"request body larger than {MAX_STREAM >> 20} MiB")
            await upstream.send(h11.Data(data=chunk))

    async def _relay(self, client: Client, upstream: Upstream, answer, observe,
                     finish: Finish) -> None:
        headers = passed_headers(answer)
        length = content_length(answer)
        if length is not None:
            headers.append(("Content-Length", length))
        await client.send(h11.Response(status_code=answer.status_code, headers=headers,
                                       reason=answer.reason))
        async for chunk in upstream.chunks():
            if observe is not None:
                # Work the answer calls for happens before the client reads that part of it
                # (docker-py asks for a built image as soon as it reads the build's end).
                work = observe(chunk)
                if work is not None:
                    await asyncio.to_thread(work)
            await client.send(h11.Data(data=chunk))
        await finish(answer.status_code)
        await client.send(h11.EndOfMessage())

    async def _hijack(self, client: Client, upstream: Upstream, answer) -> None:
        """After the daemon's 101, the connection carries raw streams both ways."""
        await client.send(h11.InformationalResponse(
            status_code=101, headers=[*passed_headers(answer), ("Connection", "Upgrade"),
                                      ("Upgrade", "tcp")], reason=answer.reason))
        early_in, early_out = client.trailing(), upstream.trailing()
        if early_in:
            upstream.writer.write(early_in)
        if early_out:
            client.writer.write(early_out)
        upload = asyncio.ensure_future(pipe(client.reader, upstream.writer))
        try:
            await pipe(upstream.reader, client.writer)
        finally:
            upload.cancel()

