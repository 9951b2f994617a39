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
    if type(value) is float:
        if value.is_integer() and CANONICALJSON_MIN_INT <= value <= CANONICALJSON_MAX_INT:
            return int(value)
        return value
    if isinstance(value, dict):
        return {k: _normalise_integral_floats(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_normalise_integral_floats(v) for v in value]
    return value


def encode_canonical_json(obj: Any, *, normalise_numbers: bool = False) -> bytes:
    """Encode `obj` as canonical JSON bytes.

    By default this is byte-for-byte what Synapse produces (the same
    `canonicaljson` package), which is what matters for signatures over
    request bodies and events.  The spec's example encodes a parsed `1e10` as
    `10000000000`, but Python parses that literal as a float and canonicaljson
    writes `10000000000.0`; `normalise_numbers=True` applies the spec's
    reading (integral floats become integers) at the cost of a walk over the
    object.  Events never need it: floats are invalid in them
    (check_canonical_json_values).
    """
    if normalise_numbers:
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
