"""The client-server form of an event (what /sync, /messages and /event return).

Two forms, as Synapse serves them: ``client_event`` is the "client v2" form /sync (and
sliding sync, /notifications, a state event's ``?format=event``) uses; ``client_v1`` adds
what Synapse's ``format_event_for_client_v1`` adds for every other endpoint that returns
events (/messages, /context, /event, /state, /members, /search, /relations, /threads,
/initialSync, /events, the admin API): ``user_id`` (the sender) and some of ``unsigned``
again at the top level."""

from __future__ import annotations

from typing import Any

from homeserver.events.event import Event
from homeserver.protocol.redaction import redact_event

# PDU fields clients never see.
_FEDERATION_ONLY = ("auth_events", "prev_events", "hashes", "signatures", "depth", "origin", "membership", "prev_state")


def client_event(
    event: Event,
    now_ms: int,
    *,
    include_room_id: bool = True,
    for_device: tuple[str, str] | None = None,
    redacted_because: dict[str, Any] | None = None,
    relations: dict[str, Any] | None = None,
) -> dict[str, Any]:
    pdu = event.pdu
    if event.redacted_by is not None:
        pdu = redact_event(pdu, event.room_version)
    out = {k: v for k, v in pdu.items() if k not in _FEDERATION_ONLY and k != "unsigned"}
    out["event_id"] = event.event_id
    if include_room_id:
        out["room_id"] = event.room_id
    else:
        out.pop("room_id", None)
    out.setdefault("content", {})
    if out.get("type") == "m.room.redaction" and "redacts" not in out and isinstance(out["content"].get("redacts"), str):
        # Room v11 moved `redacts` into content; the client-server spec asks servers to
        # keep serving it at the top level too, and matrix-js-sdk reads only that.
        out["redacts"] = out["content"]["redacts"]
    if out.get("type") == "m.room.redaction":
        _both_redacts(out)
    unsigned: dict[str, Any] = {}
    # From the event as stored: a redaction prunes the event, not what it replaced
    # (Synapse keeps prev_content, prev_sender and replaces_state on a redacted event).
    prev = event.pdu.get("unsigned", {})
    for key in ("prev_content", "prev_sender", "replaces_state", "invite_room_state", "knock_room_state"):
        if key in prev:
            unsigned[key] = prev[key]
    unsigned["age"] = max(0, now_ms - event.origin_server_ts)
    if event.redacted_by is not None:
        unsigned["redacted_because"] = redacted_because or {"event_id": event.redacted_by}
        unsigned["redacted_by"] = event.redacted_by
    if for_device is not None and event.txn_id and event.device_id:
        user_id, device_id = for_device
        if user_id == event.sender and device_id == event.device_id:
            unsigned["transaction_id"] = event.txn_id
    if relations:
        unsigned["m.relations"] = relations
    out["unsigned"] = unsigned
    return out


# What format_event_for_client_v1 copies from unsigned to the top level.
_V1_FROM_UNSIGNED = ("age", "redacted_because", "replaces_state", "prev_content", "invite_room_state", "knock_room_state")


def client_v1(event: dict[str, Any]) -> dict[str, Any]:
    """The legacy "client v1" form of a client event (see the module's docstring)."""
    out = dict(event)
    if "sender" in out:
        out["user_id"] = out["sender"]
    unsigned = out.get("unsigned") or {}
    for key in _V1_FROM_UNSIGNED:
        if key in unsigned:
            out[key] = unsigned[key]
    relations = unsigned.get("m.relations")
    if isinstance(relations, dict):
        # The events bundled in it (a thread's latest event, an edit) come in the same
        # form, as Synapse serialises them with the same settings.
        bundled = dict(relations)
        thread = relations.get("m.thread")
        if isinstance(thread, dict) and isinstance(thread.get("latest_event"), dict):
            bundled["m.thread"] = {**thread, "latest_event": client_v1(thread["latest_event"])}
        if isinstance(relations.get("m.replace"), dict) and "event_id" in relations["m.replace"]:
            bundled["m.replace"] = client_v1(relations["m.replace"])
        out["unsigned"] = {**unsigned, "m.relations": bundled}
    return out


def federation_form(event: Event, unsigned: dict[str, Any]) -> dict[str, Any]:
    """The event as a sync filter's ``event_format: federation`` asks for it: the PDU (as
    redacted, if it was) with its event id and room id, and the client's ``unsigned``
    (what Synapse sends)."""
    pdu = redact_event(event.pdu, event.room_version) if event.redacted_by is not None else event.pdu
    out = {k: v for k, v in pdu.items() if k != "unsigned"}
    out["event_id"] = event.event_id
    out["room_id"] = event.room_id
    out["unsigned"] = unsigned
    return out


def _both_redacts(out: dict[str, Any]) -> None:
    """Room v11 moved ``redacts`` into ``content``; matrix-js-sdk (so Element) still reads
    the top-level key and older-version clients the other way round. Serve both, as
    Synapse does, without touching the stored PDU's dicts."""
    content = out["content"]
    if not isinstance(content, dict):
        return
    if isinstance(content.get("redacts"), str):
        out.setdefault("redacts", content["redacts"])
    elif isinstance(out.get("redacts"), str):
        out["content"] = {**content, "redacts": out["redacts"]}

