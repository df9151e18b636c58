"""Request fields read the way the daemon reads them, then written out again in one form.

The daemon decodes JSON with Go's ``encoding/json``: struct field names match case-insensitively
and a later duplicate wins. A check that reads ``"Privileged"`` while the daemon also honours
``"privileged"`` checks nothing. So every body and every query parameter is decoded here against
a schema of the fields the gatekeeper accepts: a field the schema does not know is refused by
name, a field given twice under any spelling is refused, and what reaches the daemon is encoded
again from the decoded value, never the client's bytes.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from .rules import Refused

INT64 = (-(2**63), 2**63 - 1)
UINT = (0, 2**64 - 1)
ASCII_NAME = re.compile(r"^[\x21-\x7e]+$")


def refuse(where: str, message: str) -> Refused:
    return Refused("allowed-fields", f"{where}: {message}", 400)


class Kind:
    """One shape of value: ``decode`` checks a JSON value and returns its canonical form."""

    def decode(self, value: Any, where: str) -> Any:
        raise NotImplementedError

    def encode(self, value: Any) -> Any:
        """The canonical value as JSON data (most kinds decode to it already)."""
        return value


def _check_text(text: str, where: str) -> str:
    if "\x00" in text or any(0xD800 <= ord(ch) <= 0xDFFF for ch in text):
        raise refuse(where, "text with a NUL or an unpaired surrogate is not accepted")
    return text


class Str(Kind):
    def decode(self, value, where):
        if not isinstance(value, str):
            raise refuse(where, f"expected text, got {type(value).__name__}")
        return _check_text(value, where)


class Int(Kind):
    def __init__(self, low: int = INT64[0], high: int = INT64[1]) -> None:
        self.low, self.high = low, high

    def decode(self, value, where):
        if isinstance(value, bool) or not isinstance(value, int):
            raise refuse(where, f"expected an integer, got {type(value).__name__}")
        if not self.low <= value <= self.high:
            raise refuse(where, f"{value} is out of range")
        return value


class Bool(Kind):
    def decode(self, value, where):
        if not isinstance(value, bool):
            raise refuse(where, f"expected true or false, got {type(value).__name__}")
        return value


class Number(Kind):
    def decode(self, value, where):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise refuse(where, f"expected a number, got {type(value).__name__}")
        return value


@dataclass
class ListOf(Kind):
    item: Kind
    #: Go's strslice.StrSlice also takes a single string, as a list of one.
    single: bool = False

    def decode(self, value, where):
        if self.single and isinstance(value, str):
            value = [value]
        if not isinstance(value, list):
            raise refuse(where, f"expected a list, got {type(value).__name__}")
        return [self.item.decode(item, f"{where}[{i}]") for i, item in enumerate(value)]


@dataclass
class MapOf(Kind):
    """A JSON object whose keys are data (labels, options): matched exactly, as Go maps are."""

    value: Kind

    def decode_pairs(self, value, where) -> list[tuple[str, Any]]:
        """The object's pairs, each key once: a key given twice is refused."""
        pairs, seen = _pairs(value, where), set()
        for key, _ in pairs:
            if key in seen:
                raise refuse(where, f"key {key!r} is given twice")
            seen.add(key)
            _check_text(key, where)
        return pairs

    def decode(self, value, where):
        return {key: None if item is None else self.value.decode(item, f"{where}[{key!r}]")
                for key, item in self.decode_pairs(value, where)}


class Filters(Kind):
    """A filters parameter: {"label": ["a=b"]}, or the older {"label": {"a=b": true}}.

    Decoded as lists of terms; written back in the form every API version reads.
    """

    def decode(self, value, where):
        result = {}
        for key, item in MapOf(Kind()).decode_pairs(value, where):
            if isinstance(item, list) and not isinstance(item, _Object):
                result[key] = ListOf(Str()).decode(item, f"{where}[{key!r}]")
            else:
                flags = MapOf(Bool()).decode(item, f"{where}[{key!r}]")
                result[key] = [term for term, on in flags.items() if on]
        return result

    def encode(self, filters: dict[str, list[str]]) -> dict[str, dict[str, bool]]:
        return {key: {term: True for term in terms} for key, terms in filters.items()}


class Empty(Kind):
    """Go's ``struct{}``: any object, written back empty."""

    def decode(self, value, where):
        _pairs(value, where)
        return {}


@dataclass
class Struct(Kind):
    """A Go struct: field names matched as ``encoding/json`` does, and only the listed ones."""

    fields: dict[str, Kind]
    #: Drop an unknown field given as null instead of refusing it (the daemon ignores it too).
    unknown_null: bool = False

    def __post_init__(self) -> None:
        self._by_fold = {name.lower(): name for name in self.fields}

    def decode(self, value, where):
        result = {}
        for key, item in _pairs(value, where):
            if not ASCII_NAME.match(key):
                # Go folds some non-ASCII letters onto ASCII ones (the Kelvin sign onto k):
                # a field name must be plain ASCII to be matched the same way on both sides.
                raise refuse(where, f"field name {key!r} is not plain ASCII")
            name = self._by_fold.get(key.lower())
            path = f"{where}.{name or key}" if where else (name or key)
            if name is None and item is None and self.unknown_null:
                continue
            if name is None:
                raise refuse(path, "is not a field the gatekeeper accepts")
            if name in result:
                raise refuse(path, "is given twice (field names match whatever their case)")
            if item is None:
                result[name] = None  # Go leaves a field given as null at its zero value
                continue
            result[name] = self.fields[name].decode(item, path)
        return {name: item for name, item in result.items() if item is not None}


def _pairs(value, where) -> list[tuple[str, Any]]:
    if not isinstance(value, _Object):
        raise refuse(where or "body", f"expected an object, got {_type_name(value)}")
    return list(value)


def _type_name(value) -> str:
    return "object" if isinstance(value, _Object) else type(value).__name__


class _Object(list):
    """A JSON object as its list of (key, value) pairs, duplicates kept for the schema to judge."""


def _no_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def parse_json(data: bytes | str, where: str = "body") -> Any:
    """JSON as Go reads it: UTF-8, no NaN or Infinity, exactly one value."""
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        return json.loads(text, object_pairs_hook=_Object, parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError) as error:
        raise refuse(where, f"not valid JSON ({error})") from None


def decode_json(kind: Kind, data: bytes | str, where: str = "body") -> Any:
    return kind.decode(parse_json(data, where), where if where != "body" else "")


def encode_json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


# -- query parameters -------------------------------------------------------------------------


class Param:
    """One query parameter: ``decode`` reads the client's text, ``encode`` writes it back."""

    repeated = False

    def decode(self, text: str, where: str) -> Any:
        return _check_text(text, where)

    def encode(self, value: Any) -> str:
        return str(value)


class TextParam(Param):
    pass


class ListParam(Param):
    """A parameter the daemon reads as a list (``r.Form["t"]``): given as often as needed."""

    repeated = True


class BoolParam(Param):
    """Go's ``httputils.BoolValue``: "", 0, no, false and none are false, anything else true."""

    def decode(self, text, where):
        return text.strip().lower() not in ("", "0", "no", "false", "none")

    def encode(self, value):
        return "1" if value else "0"


class IntParam(Param):
    def __init__(self, low: int = INT64[0], high: int = INT64[1]) -> None:
        self.low, self.high = low, high

    def decode(self, text, where):
        if not re.fullmatch(r"[+-]?\d+", text):
            raise refuse(where, f"{text!r} is not an integer")
        number = int(text)
        if not self.low <= number <= self.high:
            raise refuse(where, f"{number} is out of range")
        return number


@dataclass
class JsonParam(Param):
    kind: Kind = field(default_factory=Str)

    def decode(self, text, where):
        return decode_json(self.kind, text, where)

    def encode(self, value):
        return encode_json(self.kind.encode(value)).decode()


@dataclass
class Query:
    """The query parameters one endpoint accepts."""

    params: dict[str, Param] = field(default_factory=dict)

    def decode(self, pairs: list[tuple[str, str]]) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for key, text in pairs:
            param = self.params.get(key)
            if param is None:
                raise refuse(f"query parameter {key!r}", "is not one the gatekeeper accepts "
                             f"here (accepted: {', '.join(sorted(self.params)) or 'none'})")
            value = param.decode(text, f"query parameter {key!r}")
            if param.repeated:
                values.setdefault(key, []).append(value)
            elif key in values:
                raise refuse(f"query parameter {key!r}", "is given twice")
            else:
                values[key] = value
        return values

    def encode(self, values: dict[str, Any]) -> list[tuple[str, str]]:
        pairs = []
        for key, value in values.items():
            param = self.params[key]
            for item in (value if param.repeated else [value]):
                pairs.append((key, param.encode(item)))
        return pairs
