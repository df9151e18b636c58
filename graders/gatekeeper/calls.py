"""A request as the gatekeeper understands it, and as it writes it out for the daemon.

A ``Call`` holds the decoded request: method, endpoint path, query values and body as the
schemas read them. Rules change the call, never the client's bytes; ``target`` and ``body``
are then encoded from the call alone.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import quote, unquote, unquote_plus, urlencode

from .fields import decode_json, encode_json, refuse
from .schemas import AUTH, CONTEXT, STREAM, Endpoint

VERSION = re.compile(r"^/v\d+\.\d+(?=/)")
BAD_ESCAPE = re.compile(r"%(?![0-9a-fA-F]{2})")
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


@dataclass
class Call:
    method: str
    version: str
    path: str
    endpoint: Endpoint = field(default_factory=Endpoint)
    query: dict[str, Any] = field(default_factory=dict)
    #: The decoded JSON body; for a build, the context archive to send.
    body: Any = None
    #: X-Registry-Auth, decoded: credentials for the submission's own registry.
    auth: dict | None = None
    upgrade: bool = False

    def param(self, name: str, default: Any = None) -> Any:
        return self.query.get(name, default)

    def params(self, name: str) -> list:
        return list(self.query.get(name) or [])

    def with_query(self, **changes) -> Call:
        return replace(self, query={**self.query, **changes})

    def with_path(self, path: str) -> Call:
        return replace(self, path=path)

    @property
    def target(self) -> str:
        pairs = self.endpoint.query.encode(self.query)
        path = quote(self.version + self.path, safe="/:@")
        return path + ("?" + urlencode(pairs, quote_via=quote) if pairs else "")

    def headers(self, length: int | None) -> list[tuple[str, str]]:
        """The head the daemon receives, written by the gatekeeper alone."""
        headers = [("Host", "docker")]
        if self.endpoint.body is not None and (length or self.endpoint.body in (STREAM,)):
            headers.append(("Content-Type", self.endpoint.content_type))
        if length is not None:
            headers.append(("Content-Length", str(length)))
        elif self.endpoint.body == STREAM:
            headers.append(("Transfer-Encoding", "chunked"))
        if self.auth is not None:
            headers.append(("X-Registry-Auth",
                            base64.urlsafe_b64encode(encode_json(self.auth)).decode()))
        if self.upgrade:
            headers += [("Connection", "Upgrade"), ("Upgrade", "tcp")]
        return headers

    def encoded_body(self) -> bytes | None:
        """The body to send whole, or None when the client's body is streamed (or absent)."""
        if self.endpoint.body in (None, STREAM):
            return None
        if self.endpoint.body == CONTEXT:
            return self.body
        return encode_json(self.body if self.body is not None else {})


def split_target(target: str) -> tuple[str, str, list[tuple[str, str]]]:
    """(version prefix, decoded path, query pairs), read strictly: anything Go's query parser
    would read another way is refused. (An unclean path is the daemon's router's to redirect.)"""
    if not target.startswith("/") or "#" in target:
        raise refuse("request target", f"{target[:80]!r} is not a plain path")
    raw_path, _, raw_query = target.partition("?")
    if BAD_ESCAPE.search(raw_path) or BAD_ESCAPE.search(raw_query):
        raise refuse("request target", "has a broken %-escape")
    try:
        path = unquote(raw_path, errors="strict")
    except UnicodeDecodeError:
        raise refuse("request target", "is not UTF-8") from None
    match = VERSION.match(path)
    version = match.group(0) if match else ""
    pairs = []
    for part in raw_query.split("&") if raw_query else []:
        if not part:
            continue
        if ";" in part:
            raise refuse("query", "';' separates nothing here (the daemon refuses it)")
        key, _, value = part.partition("=")
        try:
            pairs.append((unquote_plus(key, errors="strict"),
                          unquote_plus(value, errors="strict")))
        except UnicodeDecodeError:
            raise refuse("query", "is not UTF-8") from None
    return version, path[len(version):], pairs


def check_content_type(content_type: str) -> None:
    """A form body would be read by the daemon before the query string: never accepted."""
    kind = content_type.split(";")[0].strip().lower()
    if kind in FORM_TYPES:
        raise refuse("Content-Type", f"{kind} bodies are not accepted (the daemon would read "
                                     f"parameters from them): send parameters in the query")


def decode_auth(header: str) -> dict:
    """X-Registry-Auth as the daemon decodes it: base64 (URL alphabet) of an AuthConfig."""
    try:
        padded = header.strip() + "=" * (-len(header.strip()) % 4)
        data = base64.urlsafe_b64decode(padded.encode("ascii"))
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raise refuse("X-Registry-Auth", "is not base64") from None
    return decode_json(AUTH, data, "X-Registry-Auth")
