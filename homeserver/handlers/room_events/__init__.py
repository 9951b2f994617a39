"""The event pipeline: one road for every event that enters a room.

* ``room_cache.py``: ``RoomInfo``, each room's state in memory (version, current state
  ids, snapshot id, forward extremities, depth, local members), and the mirrors of local
  memberships, so building and authorising an event reads no database;
* ``builder.py``: ``EventSpec`` (what a sender asks for) and ``EventBuilder``: the
  fields that place an event in the room (prev_events, depth, auth_events), hashes,
  signature, id; ``new_pdu`` also makes the templates of ``make_join``/``make_leave``/
  ``make_knock``;
* ``authoriser.py``: the auth rules against the state an event is sent into;
* ``persister.py``: group commit of local events, persistence of remote events, and the
  one after-commit step for both (membership mirrors, stream positions, redactions,
  ``PersistedEventsListener``s, waking ``/sync``);
* ``pipeline.py``: ``RoomEventPipeline`` (``hs.rooms``): transaction-id deduplication
  and the per-room queue that batches local sends and runs remote work between batches.
"""

from homeserver.handlers.room_events.builder import EventSpec
from homeserver.handlers.room_events.persister import PersistedEventsListener, RemoteEvent
from homeserver.handlers.room_events.pipeline import RoomEventPipeline
from homeserver.handlers.room_events.room_cache import RoomInfo, Snapshot

__all__ = ["EventSpec", "PersistedEventsListener", "RemoteEvent", "RoomEventPipeline", "RoomInfo", "Snapshot"]
