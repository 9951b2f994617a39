"""Builds the federation services and plugs them into the HomeServer (called from
``HomeServer._build_services``)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from homeserver.app import HomeServer

logger = logging.getLogger(__name__)


def setup_federation(hs: "HomeServer") -> None:
    from federation.client import FederationClient
    from federation.edu import register_edu_hooks
    from federation.keyring import Keyring
    from federation.keys_server import register_key_servlets
    from federation.queries import register_queries
    from federation.sender import FederationSender
    from federation.transactions import register_transaction_servlet
    from federation.transport.client import FederationTransport
    from federation.transport.server import start_federation_listener, stop_federation_listener

    transport = FederationTransport(hs)
    hs.keyring = Keyring(hs, transport)  # type: ignore[attr-defined]
    sender = FederationSender(hs, transport)
    hs.federation_sender = sender  # type: ignore[attr-defined]
    hs.federation = FederationClient(hs, transport, sender)
    hs.federation_inbound_hooks = [sender.on_remote_alive]  # type: ignore[attr-defined]
    if not hasattr(hs, "federation_events"):
        hs.federation_events = None  # type: ignore[attr-defined]

    register_key_servlets(hs)
    register_transaction_servlet(hs)
    register_queries(hs)
    register_edu_hooks(hs)

    hs.federation_listener = None  # type: ignore[attr-defined]

    async def startup() -> None:
        if hs.config.federation_listener.enabled:
            port = start_federation_listener(hs)
            hs.federation_listener = port  # type: ignore[attr-defined]
            hs.federation_listening_port = port.getHost().port  # type: ignore[attr-defined]
        if hs.config.federation.enabled:
            await sender.start()

    async def shutdown() -> None:
        await sender.stop()
        port, hs.federation_listener = hs.federation_listener, None  # type: ignore[attr-defined]
        if port is not None:
            await stop_federation_listener(port)
        await transport.close()

    hs.startup_hooks.append(startup)
    hs.shutdown_hooks.append(shutdown)

