"""Parsing and validating what a client sent: JSON bodies and query parameters.

Handlers call these so that bad input becomes the spec's 400 error, never a 500.
"""

from __future__ import annotations

import io
import json
import os
import re
from typing import Any, BinaryIO, Literal, overload

from twisted.web.server import Request

from homeserver.http.errors import BadJson, InvalidParam, MissingParam, NotJson, TooLarge

MAX_JSON_BODY = 1024 * 1024  # a client request body larger than this is refused
# Federation transactions carry up to 50 PDUs of 64 KiB each plus EDUs.
MAX_FEDERATION_BODY = 10 * 1024 * 1024


def _reject_constant(value: str) -> Any:
    raise ValueError(f"invalid JSON value {value}")


def parse_json_body(request: Request, allow_empty: bool = False) -> dict[str, Any]:
    """The request body as a JSON object (not array, not scalar)."""
    body = read_body(request, MAX_JSON_BODY)
    if not body.strip():
        if allow_empty:
            return {}
        raise NotJson("Content not JSON.")
    try:
        # Strict UTF-8 first: json.loads(bytes) would let encoded surrogates through.
        value = json.loads(body.decode("utf-8"), parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise NotJson("Content not JSON.") from None
    if _MAYBE_SURROGATE.search(body) and not _is_unicode_clean(value):
        # "\ud800" alone is valid JSON syntax but no Unicode text: it could never be
        # hashed, stored as UTF-8 or sent on, so refuse it here rather than fail later.
        raise NotJson("Content not JSON: lone UTF-16 surrogate")
    if not isinstance(value, dict):
        raise BadJson("Content must be a JSON object.")
    return value


# A \uD800-\uDFFF escape: only then can the parsed JSON hold a lone surrogate (raw
# surrogate bytes are already invalid UTF-8), so only then is the full check needed.
_MAYBE_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F]")


def _is_unicode_clean(value: Any) -> bool:
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except (UnicodeEncodeError, RecursionError):
        return False
    return True


def body_file(request: Request) -> tuple[BinaryIO, int]:
    """The request body as a file at its start, and its size, without reading it into
    memory (media uploads). The HTTP layer has already held it to the endpoint's limit."""
    content = request.content
    if content is None:
        return io.BytesIO(), 0
    size = content.seek(0, os.SEEK_END)
    content.seek(0)
    return content, size


def read_body(request: Request, limit: int) -> bytes:
    content = request.content
    if content is None:
        return b""
    content.seek(0)
    body = content.read(limit + 1)
    if len(body) > limit:
        raise TooLarge("Request body too large")
    return body


def user_agent(request: Request, limit: int = 512) -> str:
    """The User-Agent header ("" without one), cut to ``limit`` characters."""
    value = request.getHeader("User-Agent")
    return value[:limit] if value else ""


def _arg(request: Request, name: str) -> str | None:
    values = request.args.get(name.encode("ascii"))
    if not values:
        return None
    try:
        value = values[0].decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidParam(f"Query parameter {name!r} is not UTF-8") from None
    if "\x00" in value:  # no token, id or filter has one; PostgreSQL cannot store it
        raise InvalidParam(f"Query parameter {name!r} contains a NUL character")
    return value


def parse_strings(request: Request, name: str) -> list[str]:
    values = request.args.get(name.encode("ascii")) or []
    try:
        decoded = [v.decode("utf-8") for v in values]
    except UnicodeDecodeError:
        raise InvalidParam(f"Query parameter {name!r} is not UTF-8") from None
    if any("\x00" in v for v in decoded):
        raise InvalidParam(f"Query parameter {name!r} contains a NUL character")
    return decoded


def parse_string(
    request: Request,
    name: str,
    default: str | None = None,
    required: bool = False,
    allowed: tuple[str, ...] | None = None,
) -> str | None:
    value = _arg(request, name)
    if value is None:
        if required:
            raise MissingParam(f"Missing string query parameter {name!r}")
        return default
    if allowed is not None and value not in allowed:
        raise InvalidParam(f"Query parameter {name!r} must be one of {', '.join(allowed)}")
    return value


@overload
def parse_integer(request: Request, name: str, default: int, required: bool = False) -> int: ...


@overload
def parse_integer(request: Request, name: str, default: None = None, *, required: Literal[True]) -> int: ...


@overload
def parse_integer(request: Request, name: str, default: int | None = None, required: bool = False) -> int | None: ...


def parse_integer(request: Request, name: str, default: int | None = None, required: bool = False) -> int | None:
    value = _arg(request, name)
    if value is None:
        if required:
            raise MissingParam(f"Missing integer query parameter {name!r}")
        return default
    try:
        number = int(value)
    except ValueError:
        raise InvalidParam(f"Query parameter {name!r} must be an integer") from None
    # Matrix integers live in JSON's safe range; beyond it the SQL drivers overflow. Every
    # `limit` in the spec is a count: a negative one is "no LIMIT" on SQLite, an error on
    # PostgreSQL, so refuse it for all endpoints alike.
    if not -(2**53) < number < 2**53 or (name == "limit" and number < 0):
        raise InvalidParam(f"Query parameter {name!r} is out of range")
    return number


def parse_boolean(request: Request, name: str, default: bool = False) -> bool:
    value = _arg(request, name)
    if value is None:
        return default
    if value in ("true", "1"):
        return True
    if value in ("false", "0"):
        return False
    raise InvalidParam(f"Query parameter {name!r} must be true or false")


@overload
def require_str(body: dict[str, Any], key: str, required: Literal[True] = True) -> str: ...


@overload
def require_str(body: dict[str, Any], key: str, required: bool) -> str | None: ...


def require_str(body: dict[str, Any], key: str, required: bool = True) -> str | None:
    value = body.get(key)
    if value is None:
        if required:
            raise MissingParam(f"Missing {key!r}")
        return None
    if not isinstance(value, str):
        raise BadJson(f"{key!r} must be a string")
    return value


def require_dict(body: dict[str, Any], key: str, required: bool = False) -> dict[str, Any] | None:
    value = body.get(key)
    if value is None:
        if required:
            raise MissingParam(f"Missing {key!r}")
        return None
    if not isinstance(value, dict):
        raise BadJson(f"{key!r} must be an object")
    return value


def require_list(body: dict[str, Any], key: str, item_type: type | None = None) -> list[Any] | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or (item_type is not None and not all(isinstance(v, item_type) for v in value)):
        raise BadJson(f"{key!r} must be a list" + (f" of {item_type.__name__}" if item_type else ""))
    return value


def require_bool(body: dict[str, Any], key: str, default: bool) -> bool:
    value = body.get(key, default)
    if not isinstance(value, bool):
        raise BadJson(f"{key!r} must be a boolean")
    return value
