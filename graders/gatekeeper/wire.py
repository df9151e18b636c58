"""HTTP/1.1 on both sides of the gatekeeper, framed by h11 and never by the client.

Every request a submission sends on a connection, the first and all that follow it, is parsed
by h11 and judged; the daemon receives only requests the gatekeeper wrote itself, with their
own framing (no byte of the client's head or framing reaches it). Only after the daemon has
answered an attach or exec start with 101 does the connection become a raw pipe.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import h11

MAX_HEAD = 64 * 1024
MAX_JSON_BODY = 4 * 2**20
CHUNK = 64 * 1024
#: Response headers passed back to the client; h11 writes the framing ones itself.
HOP_BY_HOP = {b"content-length", b"transfer-encoding", b"connection", b"keep-alive",
              b"upgrade"}


class BadRequest(Exception):
    """The client sent something that is not an HTTP request the gatekeeper can read."""


class UpstreamClosed(Exception):
    """The daemon closed the connection without answering."""


@dataclass
class Response:
    """A whole answer: made by the gatekeeper, or the daemon's, read to the end to be rewritten."""

    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes
    chunked: bool = False


def json_response(status: int, payload) -> Response:
    reasons = {400: "Bad Request", 403: "Forbidden", 404: "Not Found", 413: "Too Large",
               502: "Bad Gateway"}
    return Response(status, reasons.get(status, "Error"),
                    [("Content-Type", "application/json")], json.dumps(payload).encode())


def stream_error(message: str) -> Response:
    """A progress stream whose only line is an error, as the daemon reports a failed push."""
    line = json.dumps({"errorDetail": {"message": message}, "error": message}) + "\r\n"
    return Response(200, "OK", [("Content-Type", "application/json")], line.encode(),
                    chunked=True)


@dataclass
class Head:
    """A request head as h11 read it: the target still raw, headers lower-cased."""

    method: str
    target: str
    headers: dict[str, str] = field(default_factory=dict)
    has_body: bool = False

    @property
    def upgrade(self) -> bool:
        return "upgrade" in self.headers.get("connection", "").lower()


class _Side:
    """One end of a connection driven by an h11 state machine."""

    def __init__(self, role, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.h11 = h11.Connection(role, max_incomplete_event_size=MAX_HEAD)
        self.reader, self.writer = reader, writer

    async def next_event(self):
        while True:
            try:
                event = self.h11.next_event()
            except h11.RemoteProtocolError as error:
                raise BadRequest(str(error)) from None
            if event is not h11.NEED_DATA:
                return event
            self.h11.receive_data(await self.reader.read(CHUNK))

    async def send(self, *events) -> None:
        for event in events:
            data = self.h11.send(event)
            if data:
                self.writer.write(data)
        await self.writer.drain()

    async def chunks(self) -> AsyncIterator[bytes]:
        """The current message's body as it arrives, until its end."""
        while True:
            event = await self.next_event()
            if isinstance(event, h11.Data):
                yield bytes(event.data)
            elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
                return
            else:
                raise BadRequest(f"unexpected {type(event).__name__} in a message body")

    async def read_all(self, limit: int, what: str = "body") -> bytes:
        body = bytearray()
        async for chunk in self.chunks():
            body += chunk
            if len(body) > limit:
                raise BadRequest(f"{what} larger than {limit} bytes")
        return bytes(body)

    def trailing(self) -> bytes:
        data, _closed = self.h11.trailing_data
        return bytes(data)


class Client(_Side):
    """The submission's side: requests come in, answers go out."""

    def __init__(self, reader, writer, judge: bool = False) -> None:
        super().__init__(h11.SERVER, reader, writer)
        #: Whether this is the judge's connection (graders.judging), not the submission's.
        self.judge = judge

    async def request(self) -> Head | None:
        """The next request's head, or None once the client has closed the connection."""
        if self.h11.our_state is h11.DONE and self.h11.their_state is h11.DONE:
            self.h11.start_next_cycle()
        elif self.h11.our_state is not h11.IDLE:
            return None  # the connection must close (HTTP/1.0, or an answer that closes it)
        event = await self.next_event()
        if isinstance(event, h11.ConnectionClosed):
            return None
        if not isinstance(event, h11.Request):
            raise BadRequest(f"expected a request, got {type(event).__name__}")
        headers: dict[str, str] = {}
        for name, value in event.headers:
            key = name.decode("latin-1")
            if key in headers and key not in ("connection",):
                raise BadRequest(f"header {key!r} is given twice")
            headers[key] = value.decode("latin-1")
        body = "transfer-encoding" in headers or int(headers.get("content-length", "0")) > 0
        return Head(event.method.decode("ascii").upper(), event.target.decode("ascii"),
                    headers, body)

    @property
    def body_unread(self) -> bool:
        return self.h11.their_state is h11.SEND_BODY

    async def answer(self, response: Response, close: bool = False) -> None:
        headers = [(k, v) for k, v in response.headers if k.lower().encode() not in HOP_BY_HOP]
        if close:
            headers.append(("Connection", "close"))
        if response.chunked:
            await self.send(h11.Response(status_code=response.status, headers=headers,
                                         reason=response.reason.encode()))
            if response.body:
                await self.send(h11.Data(data=response.body))
        else:
            headers.append(("Content-Length", str(len(response.body))))
            await self.send(h11.Response(status_code=response.status, headers=headers,
                                         reason=response.reason.encode()),
                            h11.Data(data=response.body))
        await self.send(h11.EndOfMessage())


class Upstream(_Side):
    """The daemon's side: the gatekeeper's own request goes out, the daemon's answer comes in."""

    def __init__(self, reader, writer) -> None:
        super().__init__(h11.CLIENT, reader, writer)

    async def response(self):
        event = await self.next_event()
        if isinstance(event, h11.ConnectionClosed):
            raise UpstreamClosed("the daemon closed the connection without answering")
        if not isinstance(event, (h11.Response, h11.InformationalResponse)):
            raise UpstreamClosed(f"the daemon answered with {type(event).__name__}")
        return event

    def close(self) -> None:
        self.writer.close()


def passed_headers(event) -> list[tuple[str, str]]:
    """The daemon's answer headers, without those h11 frames for the client itself."""
    return [(k.decode("latin-1"), v.decode("latin-1")) for k, v in event.headers
            if k.lower() not in HOP_BY_HOP]


def content_length(event) -> str | None:
    return next((v.decode() for k, v in event.headers if k.lower() == b"content-length"), None)


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Raw bytes one way until the reader ends, passed on as a half-close (hijacked streams)."""
    try:
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        pass
