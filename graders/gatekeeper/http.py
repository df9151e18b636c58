"""Just enough HTTP/1.1 to stand between docker-py and the daemon.

The gatekeeper parses request heads, reads a body only when a rule must look at it, and
otherwise passes bytes through untouched, so streamed bodies (builds, loads) and hijacked
connections (attach, exec) work unchanged.
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

MAX_HEAD = 64 * 1024
MAX_BODY = 4 * 1024 * 1024
VERSION_PREFIX = re.compile(r"^/v\d+(\.\d+)?(?=/)")


class BadRequest(Exception):
    """The client sent something that is not an HTTP request the gatekeeper can read."""


@dataclass
class Request:
    method: str
    target: str
    version: str = "HTTP/1.1"
    headers: list[tuple[str, str]] = field(default_factory=list)

    @property
    def path(self) -> str:
        """The endpoint without the API version prefix, percent-decoded: what rules match."""
        return unquote(VERSION_PREFIX.sub("", urlsplit(self.target).path))

    @property
    def query(self) -> list[tuple[str, str]]:
        return parse_qsl(urlsplit(self.target).query, keep_blank_values=True)

    def param(self, name: str, default: str = "") -> str:
        return next((value for key, value in self.query if key == name), default)

    def params(self, name: str) -> list[str]:
        return [value for key, value in self.query if key == name]

    def with_query(self, pairs: list[tuple[str, str]]) -> Request:
        parts = urlsplit(self.target)
        target = parts.path + ("?" + urlencode(pairs, quote_via=quote) if pairs else "")
        return Request(self.method, target, self.version, list(self.headers))

    def header(self, name: str) -> str:
        return next((v for k, v in self.headers if k.lower() == name.lower()), "")

    def with_header(self, name: str, value: str | None) -> Request:
        headers = [(k, v) for k, v in self.headers if k.lower() != name.lower()]
        if value is not None:
            headers.append((name, value))
        return Request(self.method, self.target, self.version, headers)

    @property
    def upgrades(self) -> bool:
        """attach and exec start ask to take over the connection for raw streams."""
        return "upgrade" in self.header("Connection").lower()

    def encode(self) -> bytes:
        lines = [f"{self.method} {self.target} {self.version}"]
        lines += [f"{k}: {v}" for k, v in self.headers]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


@dataclass
class Response:
    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes
    chunked: bool = False

    def encode(self) -> bytes:
        """Re-framed with the body whole: chunked stays chunked (docker-py streams on that)."""
        skip = {"content-length", "transfer-encoding", "connection"}
        lines = [f"HTTP/1.1 {self.status} {self.reason}"]
        lines += [f"{k}: {v}" for k, v in self.headers if k.lower() not in skip]
        if self.chunked:
            lines.append("Transfer-Encoding: chunked")
            body = (f"{len(self.body):x}\r\n".encode() + self.body + b"\r\n"
                    if self.body else b"") + b"0\r\n\r\n"
        else:
            lines.append(f"Content-Length: {len(self.body)}")
            body = self.body
        lines.append("Connection: close")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def json_response(status: int, payload) -> Response:
    reasons = {400: "Bad Request", 403: "Forbidden", 404: "Not Found", 502: "Bad Gateway"}
    return Response(status, reasons.get(status, "Error"),
                    [("Content-Type", "application/json")], json.dumps(payload).encode())


def stream_error(message: str) -> Response:
    """A progress stream whose only line is an error, as the daemon reports a failed push."""
    line = json.dumps({"errorDetail": {"message": message}, "error": message}) + "\r\n"
    return Response(200, "OK", [("Content-Type", "application/json")], line.encode(),
                    chunked=True)


async def _read_head_bytes(reader: asyncio.StreamReader) -> bytes:
    try:
        return await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as error:
        if not error.partial.strip():
            return b""
        raise BadRequest("the connection closed in the middle of a request head") from None
    except asyncio.LimitOverrunError:
        raise BadRequest(f"request head longer than {MAX_HEAD} bytes") from None


def _headers(lines: list[str]) -> list[tuple[str, str]]:
    headers = []
    for line in lines:
        name, sep, value = line.partition(":")
        if not sep:
            raise BadRequest(f"malformed header line {line[:60]!r}")
        headers.append((name.strip(), value.strip()))
    return headers


async def read_request(reader: asyncio.StreamReader) -> Request | None:
    """The next request head, or None when the client closed the connection cleanly."""
    raw = await _read_head_bytes(reader)
    if not raw:
        return None
    lines = raw.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/"):
        raise BadRequest(f"malformed request line {lines[0][:80]!r}")
    return Request(parts[0].upper(), parts[1], parts[2], _headers([x for x in lines[1:] if x]))


async def read_body(reader: asyncio.StreamReader, headers: list[tuple[str, str]],
                    until_eof: bool = False, limit: int = MAX_BODY) -> bytes:
    """A whole body, framed by Content-Length, chunked encoding or (responses) the close."""
    fields = {k.lower(): v for k, v in headers}
    if "chunked" in fields.get("transfer-encoding", "").lower():
        body = bytearray()
        while True:
            size_line = await reader.readuntil(b"\r\n")
            size = int(size_line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                return bytes(body)
            body += await reader.readexactly(size)
            await reader.readexactly(2)
            if len(body) > limit:
                raise BadRequest(f"body larger than {limit} bytes")
    if "content-length" in fields:
        length = int(fields["content-length"])
        if length > limit:
            raise BadRequest(f"body larger than {limit} bytes")
        return await reader.readexactly(length)
    return await reader.read(limit) if until_eof else b""


async def read_response(reader: asyncio.StreamReader) -> Response:
    raw = await _read_head_bytes(reader)
    if not raw:
        raise BadRequest("the daemon closed the connection without answering")
    lines = raw.decode("latin-1").split("\r\n")
    _, status, *reason = lines[0].split(" ")
    headers = _headers([x for x in lines[1:] if x])
    body = await read_body(reader, headers, until_eof=True, limit=256 * 1024 * 1024)
    chunked = any(k.lower() == "transfer-encoding" and "chunked" in v.lower() for k, v in headers)
    return Response(int(status), " ".join(reason), headers, body, chunked)
