"""The WebSocket stream's frames and configuration (pure: no server)."""

from __future__ import annotations

import json

from twisted.trial import unittest

from homeserver.websocket import frames
from homeserver.websocket.config import WebSocketConfig
from homeserver.websocket.frames import (
    AckFrame,
    AuthFrame,
    CloseCode,
    FrameError,
    PingFrame,
    SubscribeFrame,
)


def parse(obj: object) -> object:
    return frames.parse_client_frame(json.dumps(obj).encode(), False)


class ClientFramesTest(unittest.TestCase):
    def test_each_type(self) -> None:
        self.assertEqual(parse({"type": "auth", "access_token": "t"}), AuthFrame("t"))
        self.assertEqual(parse({"type": "ack", "token": "s1_0_0"}), AckFrame("s1_0_0"))
        self.assertEqual(parse({"type": "ping"}), PingFrame(None))
        self.assertEqual(parse({"type": "ping", "id": 3}), PingFrame(3))
        self.assertEqual(parse({"type": "subscribe"}), SubscribeFrame("sync"))
        self.assertEqual(
            parse({"type": "subscribe", "mode": "sync", "since": "s5_1_2", "filter": "7", "full_state": True,
                   "set_presence": "offline"}),
            SubscribeFrame("sync", since="s5_1_2", filter="7", full_state=True, set_presence="offline"),
        )
        sub = parse({"type": "subscribe", "filter": {"room": {"timeline": {"limit": 5}}}})
        assert isinstance(sub, SubscribeFrame)
        self.assertEqual(json.loads(sub.filter or ""), {"room": {"timeline": {"limit": 5}}})
        self.assertEqual(
            parse({"type": "subscribe", "mode": "sliding_sync", "pos": "3/s1_0_0", "body": {"lists": {}}}),
            SubscribeFrame("sliding_sync", pos="3/s1_0_0", body={"lists": {}}),
        )

    def test_refusals(self) -> None:
        for payload, binary, errcode in (
            (b"{", False, "M_NOT_JSON"),
            (b"\xff", False, "M_NOT_JSON"),
            (b"[]", False, "M_BAD_JSON"),
            (b"{}", True, "M_BAD_JSON"),
            (b'{"type": "nope"}', False, "M_UNRECOGNIZED"),
            (b'{"type": "auth"}', False, "M_MISSING_PARAM"),
            (b'{"type": "auth", "access_token": 1}', False, "M_INVALID_PARAM"),
            (b'{"type": "ack", "token": null}', False, "M_MISSING_PARAM"),
            (b'{"type": "ping", "id": true}', False, "M_INVALID_PARAM"),
            (b'{"type": "subscribe", "mode": "x"}', False, "M_INVALID_PARAM"),
            (b'{"type": "subscribe", "filter": 5}', False, "M_INVALID_PARAM"),
            (b'{"type": "subscribe", "full_state": "yes"}', False, "M_INVALID_PARAM"),
            (b'{"type": "subscribe", "set_presence": "busy"}', False, "M_INVALID_PARAM"),
            (b'{"type": "subscribe", "mode": "sliding_sync", "body": []}', False, "M_BAD_JSON"),
        ):
            with self.assertRaises(FrameError) as caught:
                frames.parse_client_frame(payload, binary)
            self.assertEqual(caught.exception.errcode, errcode, payload)

    def test_close_codes(self) -> None:
        self.assertEqual(frames.close_code_for("M_UNKNOWN_TOKEN", 401), CloseCode.UNAUTHORIZED)
        self.assertEqual(frames.close_code_for("M_MISSING_TOKEN", 401), CloseCode.UNAUTHORIZED)
        self.assertEqual(frames.close_code_for("M_FORBIDDEN", 403), CloseCode.FORBIDDEN)
        self.assertEqual(frames.close_code_for("M_UNKNOWN_POS", 400), CloseCode.UNKNOWN_POS)
        self.assertEqual(frames.close_code_for("M_INVALID_PARAM", 400), CloseCode.BAD_FRAME)
        self.assertEqual(frames.close_code_for("M_UNKNOWN", 500), CloseCode.INTERNAL_ERROR)

    def test_server_frames(self) -> None:
        self.assertEqual(json.loads(frames.data_frame("sync", "s1_0_0", {"x": "é"})),
                         {"type": "sync", "token": "s1_0_0", "data": {"x": "é"}})
        self.assertEqual(json.loads(frames.idle_frame("s1_0_0")), {"type": "idle", "token": "s1_0_0"})
        self.assertEqual(json.loads(frames.pong_frame("a")), {"type": "pong", "id": "a"})
        self.assertEqual(json.loads(frames.error_frame("M_X", "m", soft_logout=True)),
                         {"type": "error", "errcode": "M_X", "error": "m", "soft_logout": True})


class ConfigTest(unittest.TestCase):
    def test_defaults_and_values(self) -> None:
        self.assertEqual(WebSocketConfig.from_dict({}), WebSocketConfig())
        config = WebSocketConfig.from_dict({"enabled": False, "max_unacked_frames": 4})
        self.assertEqual((config.enabled, config.max_unacked_frames), (False, 4))

    def test_bad_values(self) -> None:
        for data, key in (
            ({"nope": 1}, "websocket.nope"),
            ({"enabled": 1}, "websocket.enabled"),
            ({"heartbeat_ms": 0}, "websocket.heartbeat_ms"),
            ({"max_unacked_bytes": "1M"}, "websocket.max_unacked_bytes"),
            ({"ping_timeout_ms": 500}, "websocket.ping_timeout_ms"),
        ):
            with self.assertRaises(ValueError) as caught:
                WebSocketConfig.from_dict(data)
            self.assertTrue(str(caught.exception).startswith(key + ":"), str(caught.exception))
