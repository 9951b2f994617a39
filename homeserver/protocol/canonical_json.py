"""Canonical JSON (appendices, "Canonical JSON"; room versions 6+ rules).

Encoding is delegated to the `canonicaljson` package (sorted keys, no
whitespace, UTF-8 output).  The spec's value restrictions are enforced by
:func:`check_canonical_json_values`, which callers apply to PDUs received over
federation and to client-supplied event content.
"""

from __future__ import annotations

import json
from typing import Any

import canonicaljson

# Numbers must be exactly representable as IEEE doubles.
CANONICALJSON_MAX_INT = 2**53 - 1
CANONICALJSON_MIN_INT = -(2**53) + 1


def _normalise_integral_floats(value: Any) -> Any:
    # The spec's own example encodes `{"b": 1e10}` as `10000000000`: a JSON
    # parser hands us a float for an exponent literal, yet the canonical form
    # of an integral number has no fraction.  Non-integral floats are left to
    # canonicaljson (they are rejected by check_canonical_json_values where it
    # matters, exactly as Synapse does).
    if type(value) is float:
        if value.is_integer() and CANONICALJSON_MIN_INT <= value <= CANONICALJSON_MAX_INT:
            return int(value)
        return value
    if isinstance(value, dict):
        return {k: _normalise_integral_floats(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_normalise_integral_floats(v) for v in value]
    return value


def _contains_float(value: Any) -> bool:
    if type(value) is float:
        return True
    if isinstance(value, dict):
        return any(_contains_float(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_contains_float(v) for v in value)
    return False


def encode_canonical_json(obj: Any) -> bytes:
    """Encode `obj` as canonical JSON bytes."""
    # Walking the object is only needed when floats are present; the common
    # case (events straight off the wire) skips the copy.
    if _contains_float(obj):
        obj = _normalise_integral_floats(obj)
    return canonicaljson.encode_canonical_json(obj)


def check_canonical_json_values(obj: Any) -> None:
    """Raise ValueError unless every value is representable in canonical JSON.

    Mirrors Synapse's `validate_canonicaljson`: floats (including NaN and the
    infinities) and integers outside [-(2**53)+1, 2**53-1] are rejected, as is
    any non-JSON Python type.
    """
    stack: list[Any] = [obj]
    while stack:
        value = stack.pop()
        if value is None or value is True or value is False or isinstance(value, str):
            continue
        if type(value) is int:
            if not CANONICALJSON_MIN_INT <= value <= CANONICALJSON_MAX_INT:
                raise ValueError(f"JSON integer out of range: {value}")
        elif isinstance(value, float):
            raise ValueError(f"Bad JSON value: float {value!r}")
        elif isinstance(value, dict):
            for key in value:
                if not isinstance(key, str):
                    raise ValueError(f"JSON object key is not a string: {key!r}")
            stack.extend(value.values())
        elif isinstance(value, (list, tuple)):
            stack.extend(value)
        else:
            raise ValueError(f"Unknown JSON value: {type(value).__name__}")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"Invalid JSON constant: {name}")


_STRICT_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def decode_json(data: str | bytes) -> Any:
    """Parse JSON as received from the network.

    Rejects the NaN / Infinity extensions Python accepts by default (as
    Synapse does); value-range checks are check_canonical_json_values' job.
    """
    if isinstance(data, (bytes, bytearray)):
        data = data.decode("utf-8")
    return _STRICT_DECODER.decode(data)
