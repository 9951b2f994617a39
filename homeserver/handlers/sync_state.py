"""Which state a /sync room entry carries, and which lazy-loaded members a device has.

Synapse's rules, which clients are written against: the ``state`` block is what the
client must lay over the state it had at the end of its previous sync to get the state at
the start of the timeline. Pure functions over state maps ((type, state_key) -> event id).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable

StateKey = tuple[str, str]
StateIds = dict[StateKey, str]

# Members remembered per device (Synapse keeps 100 too): past that, a member is sent again.
LAZY_MEMBERS_PER_DEVICE = 100


def only_members(state: StateIds, users: Iterable[str]) -> StateIds:
    """The non-member state plus the memberships of ``users`` (lazy loading)."""
    wanted = set(users)
    return {k: v for k, v in state.items() if k[0] != "m.room.member" or k[1] in wanted}


def state_delta(
    timeline_contains: StateIds,
    timeline_start: StateIds,
    timeline_end: StateIds,
    previous_end: StateIds,
    lazy_load_members: bool,
) -> StateIds:
    """The state to send: what holds at the start or the end of the timeline, less what
    the client had at the end of its previous sync and what the timeline itself carries.

    The end of the timeline counts as well as its start: a state event that is not in the
    (filtered) timeline but took effect within it must reach the client. With lazy-loaded
    members, ``timeline_start`` holds only the members the timeline needs; those are sent
    even if unchanged, since the client may never have been given them.
    """
    key_of: dict[str, StateKey] = {}
    for mapping in (timeline_contains, timeline_start, timeline_end, previous_end):
        for k, event_id in mapping.items():
            key_of[event_id] = k
    already = set(previous_end.values())
    if lazy_load_members:
        already -= {e for k, e in timeline_start.items() if k[0] == "m.room.member"}
    wanted = (set(timeline_end.values()) | set(timeline_start.values())) - already - set(timeline_contains.values())
    out: StateIds = {}
    # Where both the start and the end value of a key remain, the end one wins.
    for mapping in (timeline_start, timeline_end):
        for event_id in mapping.values():
            if event_id in wanted:
                out[key_of[event_id]] = event_id
    return out


class LazyMembersSent:
    """The memberships one device has been sent under lazy loading, so they are not sent
    again (unless ``include_redundant_members``).

    Each entry remembers the stream position of the response that carried it: a request
    from an older ``since`` means the client lost the responses after it (a retry, a
    reload from an older saved token), so those entries are forgotten first.
    """

    def __init__(self) -> None:
        self._sent: OrderedDict[str, tuple[str, int]] = OrderedDict()
        self._newest = 0

    def start_request(self, since: int | None) -> None:
        if since is None:
            self._sent.clear()
            self._newest = 0
            return
        if self._newest <= since:
            return
        for user_id, (_, at) in list(self._sent.items()):
            if at > since:
                del self._sent[user_id]
        self._newest = since

    def was_sent(self, user_id: str, event_id: str) -> bool:
        entry = self._sent.get(user_id)
        if entry is None or entry[0] != event_id:
            return False
        self._sent.move_to_end(user_id)
        return True

    def mark_sent(self, user_id: str, event_id: str, next_batch: int) -> None:
        self._sent[user_id] = (event_id, next_batch)
        self._sent.move_to_end(user_id)
        while len(self._sent) > LAZY_MEMBERS_PER_DEVICE:
            self._sent.popitem(last=False)
        self._newest = max(self._newest, next_batch)
