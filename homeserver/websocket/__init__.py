"""The WebSocket stream (docs/websocket.md): one socket per client on the client listener
carrying, as it happens, what /sync (or sliding sync) would return, each frame with the
token it brings the client to.

* ``frames.py``: the frames and close codes (pure);
* ``modes.py``: the two things a socket can stream, /sync responses or sliding sync
  responses, computed by the existing handlers;
* ``session.py``: one socket: authentication, subscription, acknowledgement window,
  back-pressure, heartbeats;
* ``hub.py``: every socket, woken through the notifier, ended on token revocation;
* ``server.py``: autobahn: the upgrade of an HTTP request and the protocol;
* ``config.py``: the ``websocket:`` section of wspr.yaml.

The endpoint itself is ``rest/client/websocket.py``.
"""
