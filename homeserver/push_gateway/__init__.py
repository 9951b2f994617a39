"""WSPR's own push gateway: Web Push for browsers (the PWA's service worker).

A Matrix push gateway receives ``POST /_matrix/push/v1/notify`` from homeservers' HTTP
pushers (client-server spec, "Push Gateway API"). This one lives at
``/_wspr/push/v1/notify`` on WSPR's client listener and is reached like any external
gateway would be: the PWA registers a pusher of kind ``http`` whose ``data.url`` points
here, the homeserver's pusher POSTs each notification, and the gateway sends it to the
browser's push service as Web Push (RFC 8030), encrypted for the browser (RFC 8291,
aes128gcm) and signed with the server's VAPID key (RFC 8292).

As with Sygnal's ``webpush`` pushers, the pusher's ``pushkey`` is the subscription's
public key (``p256dh``) and its ``data`` carries the subscription's ``endpoint`` and
``auth`` secret, so the gateway keeps no state of its own.

- ``vapid.py``: the VAPID key (created at first start), the public key clients subscribe
  with, and the ``Authorization`` header of each push.
- ``webpush.py``: the payload sent to the browser, its encryption, and delivery.
- ``rest.py``: ``GET /_wspr/push/v1/web`` (what the client needs to subscribe) and the
  gateway's ``POST /_matrix/push/v1/notify``.
"""
