"""One HTTP pusher: sends a user's notifications to their push gateway, in order.

As Synapse's ``HttpPusher``: the pusher reads what is left to send from storage (the
user's unread notifications after its ``last_stream_ordering``), one at a time, oldest
first, and records each one sent, so delivery is ordered, survives a restart, and skips
what the user has read meanwhile. A failure (no answer, a non-2xx status, a body that is
not JSON) stops the pusher and retries the same notification after a delay that starts
at ``push.min_retry_interval`` and doubles up to ``push.max_retry_interval``; once a
notification has failed for ``push.give_up_after`` it is dropped and the next one tried
(so a gateway that comes back does not get a day's backlog). A gateway that answers
with this pusher's pushkey in ``rejected`` gets the pusher removed.

When the user reads (a receipt) the badge may go down: the gateway gets an empty
notification with the new ``counts`` (Synapse's ``_send_badge``), once per change.

The wire format is the push gateway API's ``POST /_matrix/push/v1/notify``
(``content/push-gateway-api.md``) as Synapse fills it in.
"""

from __future__ import annotations

import json
import logging
from io import BytesIO
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from twisted.internet import defer
from twisted.internet.base import DelayedCall

from homeserver.events.event import Event
from homeserver.push.notification_context import context_for_event
from homeserver.storage.push import PushActionRow, PusherRecord
from homeserver.util.ids import now_ms
from homeserver.util.outbound_http import OutboundError, read_body

if TYPE_CHECKING:
    from homeserver.push.pusher_pool import PusherPool

logger = logging.getLogger(__name__)

NOTIFY_PATH = "/_matrix/push/v1/notify"
REQUEST_TIMEOUT_S = 30.0
MAX_RESPONSE_BYTES = 64 * 1024
BATCH = 100


class PusherConfigError(ValueError):
    """A pusher's data cannot make a working pusher (Synapse's PusherConfigException)."""


def check_http_pusher_data(data: Any) -> str:
    """The gateway URL of an http pusher's ``data``, or PusherConfigError."""
    if not isinstance(data, dict):
        raise PusherConfigError("'data' key can not be null for HTTP pusher")
    url = data.get("url")
    if url is None:
        raise PusherConfigError("'url' required in data for HTTP pusher")
    if not isinstance(url, str):
        raise PusherConfigError("'url' must be a string")
    parts = urlparse(url)
    if parts.path != NOTIFY_PATH:
        raise PusherConfigError(f"'url' must have a path of '{NOTIFY_PATH}'")
    # Synapse checks the path only; a relative URL could never be pushed to.
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise PusherConfigError("'url' must be an absolute http or https URL")
    return url


def tweaks_for_actions(actions: list[Any]) -> dict[str, Any]:
    """The ``set_tweak`` actions as a dict (a tweak without a value is true)."""
    return {a["set_tweak"]: a.get("value", True) for a in actions if isinstance(a, dict) and "set_tweak" in a}


class HttpPusher:
    def __init__(self, pool: PusherPool, record: PusherRecord) -> None:
        self.pool = pool
        self.hs = pool.hs
        self._reactor: Any = pool.hs.reactor
        self.store = pool.hs.store
        self.config = pool.hs.config.push
        self.record = record
        self.user_id = record.user_id
        self.app_id = record.app_id
        self.pushkey = record.pushkey
        self.url = check_http_pusher_data(record.data)
        self.data_minus_url = {k: v for k, v in record.data.items() if k != "url"}
        self.last_stream_ordering = record.last_stream_ordering
        # The newest notification known to exist; the pusher sends up to here.
        self.max_stream_ordering = max(self.hs.streams.current, record.last_stream_ordering)
        self.failing_since = record.failing_since
        self.backoff_s = self.config.min_retry_interval_s
        self.badge_count_last_call: int | None = None
        self._timer: DelayedCall | None = None
        self._processing = False
        self._stopped = False

    # -- what the pool tells it ---------------------------------------------------------

    def on_started(self) -> None:
        self._start_processing()

    def on_new_notifications(self, max_stream_ordering: int) -> None:
        self.max_stream_ordering = max(self.max_stream_ordering, max_stream_ordering)
        self._start_processing()

    def on_new_receipts(self) -> None:
        self.pool.run_in_background(self._update_badge())

    def on_stop(self) -> None:
        self._stopped = True
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    # -- the delivery loop ------------------------------------------------------------

    def _waiting(self) -> bool:
        """Waiting out a backoff: only the timer resumes (new notifications queue up)."""
        return self._timer is not None and self._timer.active()

    def _start_processing(self) -> None:
        if self._processing or self._stopped or self._waiting():
            return
        self.pool.run_in_background(self._process())

    def _on_timer(self) -> None:
        self._timer = None
        self._start_processing()

    async def _process(self) -> None:
        if self._processing:
            return
        self._processing = True
        try:
            # Notifications that arrive while a batch is sent are picked up by going round again.
            while not self._stopped:
                start = self.max_stream_ordering
                try:
                    await self._unsafe_process()
                except defer.CancelledError:
                    return  # the server is stopping
                except Exception:
                    logger.exception("pusher %s/%s of %s failed", self.app_id, self.pushkey, self.user_id)
                if self.max_stream_ordering == start or self._waiting():
                    break
        finally:
            self._processing = False

    async def _unsafe_process(self) -> None:
        while not self._stopped:
            rows = await self.store.get_unread_push_actions_for_pusher(
                self.user_id, self.last_stream_ordering, self.max_stream_ordering, BATCH
            )
            for row in rows:
                if self._stopped:
                    return
                done = await self._process_one(row)
                if self._stopped:
                    return  # stopped (or removed) while it was sending
                if done:
                    self.backoff_s = self.config.min_retry_interval_s
                    self.last_stream_ordering = row.stream_ordering
                    still_there = await self.store.update_pusher_last_stream_ordering(
                        self.user_id, self.app_id, self.pushkey, self.last_stream_ordering, now_ms()
                    )
                    if not still_there:
                        self.on_stop()  # deleted while it was sending
                        return
                    if self.failing_since is not None:
                        self.failing_since = None
                        await self.store.update_pusher_failing_since(self.user_id, self.app_id, self.pushkey, None)
                    continue
                now = now_ms()
                if self.failing_since is None:
                    self.failing_since = now
                    await self.store.update_pusher_failing_since(self.user_id, self.app_id, self.pushkey, now)
                if now - self.failing_since > self.config.give_up_after_s * 1000:
                    logger.warning("giving up on a notification to %s, pushkey %s", self.user_id, self.pushkey)
                    self.backoff_s = self.config.min_retry_interval_s
                    self.last_stream_ordering = row.stream_ordering
                    await self.store.update_pusher_last_stream_ordering(
                        self.user_id, self.app_id, self.pushkey, self.last_stream_ordering, None
                    )
                    self.failing_since = None
                    await self.store.update_pusher_failing_since(self.user_id, self.app_id, self.pushkey, None)
                    continue
                logger.info("push to %s failed: retrying in %gs", self.pushkey, self.backoff_s)
                self._timer = self._reactor.callLater(self.backoff_s, self._on_timer)
                self.backoff_s = min(self.backoff_s * 2, self.config.max_retry_interval_s)
                return
            if len(rows) < BATCH:
                return

    async def _process_one(self, row: PushActionRow) -> bool:
        """True when the notification is done with (sent, or nothing to send)."""
        if "notify" not in row.actions:
            return True
        tweaks = tweaks_for_actions(row.actions)
        badge = await self.pool.badge_count(self.user_id)
        event = await self.store.get_event(row.event_id)
        if event is None:
            return True
        rejected = await self._dispatch_push_event(event, tweaks, badge)
        if rejected is None:
            return False
        for pushkey in rejected:
            if pushkey == self.pushkey:
                logger.info("pushkey %s was rejected: removing the pusher", pushkey)
                await self.pool.remove_pusher(self.app_id, pushkey, self.user_id)
            else:
                # Only the pushkey we sent may be removed this way.
                logger.warning("ignoring rejected pushkey %s: it was not sent", pushkey)
        return True

    # -- the notifications ------------------------------------------------------------

    async def _dispatch_push_event(self, event: Event, tweaks: dict[str, Any], badge: int) -> list[str] | None:
        # Synapse's heuristic: high priority for what may ring (encrypted events could be
        # anything), low otherwise.
        prio = "high" if event.type == "m.room.encrypted" or tweaks.get("highlight") or tweaks.get("sound") else "low"
        content: dict[str, Any]
        if self.record.data.get("format") == "event_id_only":
            content = {"event_id": event.event_id, "room_id": event.room_id, "prio": prio, "counts": {"unread": badge}}
            tweaks = {}  # event_id_only carries no tweaks either
        else:
            ctx = await context_for_event(self.store, event, self.user_id)
            content = {
                # Synapse still sends the deprecated "id" next to event_id.
                "id": event.event_id,
                "event_id": event.event_id,
                "room_id": event.room_id,
                "type": event.type,
                "sender": event.sender,
                "prio": prio,
                "counts": {"unread": badge},
            }
            if event.type == "m.room.member" and event.is_state:
                content["membership"] = event.content.get("membership")
                content["user_is_target"] = event.state_key == self.user_id
            if self.config.include_content and event.content:
                content["content"] = event.content
            if ctx.sender_display_name:
                content["sender_display_name"] = ctx.sender_display_name
            if ctx.room_name:
                content["room_name"] = ctx.room_name
        rejected = await self._dispatch_push(content, tweaks)
        if rejected is not None and not rejected:
            self.badge_count_last_call = badge
        return rejected

    def _device(self, tweaks: dict[str, Any] | None) -> dict[str, Any]:
        device: dict[str, Any] = {
            "app_id": self.app_id,
            "pushkey": self.pushkey,
            "pushkey_ts": self.record.ts // 1000,
            "data": dict(self.data_minus_url),
        }
        if tweaks:
            device["tweaks"] = tweaks
        return device

    async def _dispatch_push(self, content: dict[str, Any], tweaks: dict[str, Any]) -> list[str] | None:
        """The pushkeys the gateway rejected (empty: all went through), or None when the
        gateway could not be reached or failed."""
        answer = await self._post({"notification": {**content, "devices": [self._device(tweaks)]}})
        if not isinstance(answer, dict):
            return None
        rejected = answer.get("rejected")
        return [p for p in rejected if isinstance(p, str)] if isinstance(rejected, list) else []

    async def _update_badge(self) -> None:
        badge = await self.pool.badge_count(self.user_id)
        if self._stopped:
            return
        if self.badge_count_last_call is None or self.badge_count_last_call != badge:
            self.badge_count_last_call = badge
            await self._send_badge(badge)

    async def _send_badge(self, badge: int) -> None:
        # Synapse's badge update: a notification with only counts; not retried.
        await self._post(
            {
                "notification": {
                    "id": "",
                    "type": None,
                    "sender": "",
                    "counts": {"unread": badge},
                    "devices": [self._device(None)],
                }
            }
        )

    async def _post(self, body: dict[str, Any]) -> Any:
        """The JSON answer of a 2xx response; None on any failure (logged)."""
        data = json.dumps(body, ensure_ascii=False).encode("utf-8")
        try:
            response = await self.pool.http.request(
                b"POST",
                self.url,
                headers={b"Content-Type": [b"application/json"]},
                body=data,
                timeout=REQUEST_TIMEOUT_S,
            )
            out = BytesIO()
            await read_body(self.hs.reactor, response, out.write, MAX_RESPONSE_BYTES, REQUEST_TIMEOUT_S)
        except OutboundError as e:
            logger.warning("push to %s/%s failed: %s", self.app_id, self.pushkey, e)
            return None
        if not 200 <= response.code < 300:
            logger.warning("push to %s/%s failed: HTTP %d", self.app_id, self.pushkey, response.code)
            return None
        try:
            return json.loads(out.getvalue())
        except ValueError:
            logger.warning("push to %s/%s failed: the answer is not JSON", self.app_id, self.pushkey)
            return None
