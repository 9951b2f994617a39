"""Server-server federation.

The foundation (this package minus ``federation/rooms``), built by
``federation.setup.setup_federation(hs)``:

* ``hs.federation`` (``federation.client.FederationClient``)
  - ``await request(destination, method, path, *, query=None, body=None, timeout=60)``:
    a signed request (X-Matrix with ``destination``) over TLS after server discovery;
    raises ``federation.errors.FederationError`` (remote status/errcode),
    ``FederationUnreachable`` (502) or ``FederationDenied`` (403: allowlist, IP blocklist,
    ourselves, federation disabled). ``path`` is percent-encoded (``client.q(segment)``).
  - ``send_edu(destination, edu_type, content)`` / ``send_pdu(destinations, event)``:
    queued per destination, persisted (except typing/presence/receipts), retried.
  - ``query_user_keys``, ``claim_user_keys``, ``get_user_devices``, ``query_profile``,
    ``query_directory``, ``get_public_rooms``, ``get_hierarchy``, ``openid_userinfo``,
    ``get_version``.
* ``hs.keyring`` (``federation.keyring.Keyring``): ``await get_verify_key(server, key_id,
  valid_at_ts=None)``, ``await verify_json_for_server(server, obj, valid_at_ts=None)``;
  both raise ``KeyLookupError`` / ``MatrixError`` 401 M_UNAUTHORIZED.
* Inbound endpoints: ``federation.transport.server.authenticated(hs, handler)`` wraps
  ``handler(request, origin, **groups)`` for ``hs.federation_router``; ``json_body(request)``
  gives the already-parsed body.
* ``federation.server_acl``: ``server_acl_allows(acl_content, server_name)`` and
  ``await check_server_acl(hs, room_id, origin)``.
* ``hs.federation_room_servers.destinations(room_id)``: joined servers of a room but us.
* ``hs.federation_sender`` (queues, ``retry_state``), ``hs.federation_listener`` (the TLS port).
"""
