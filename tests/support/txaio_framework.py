"""One process, two WebSocket flavours: the SFU's signalling is autobahn on asyncio, the
homeserver's WebSocket stream is autobahn on Twisted, and autobahn reaches its framework
through txaio's module-level functions, which one process can point at only one of them.

In production the SFU is its own process. The test process holds both: it stays on
Twisted, and a test that runs the SFU in-process switches txaio to asyncio for its
duration (``asyncio_txaio``). Without the switch back, every later test of the
homeserver's WebSocket failed with 'peer dropped the TCP connection' (its Twisted
protocol was handed asyncio futures)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import txaio


def use(framework: str) -> None:
    # txaio refuses to switch once a framework is explicit; both are imported by now, so
    # the switch only re-points its functions.
    txaio._explicit_framework = None
    if framework == "asyncio":
        txaio.use_asyncio()
    else:
        txaio.use_twisted()


def load_both() -> None:
    """Imports autobahn's asyncio flavour next to the Twisted one and leaves txaio on Twisted."""
    use("asyncio")
    import autobahn.asyncio.websocket  # noqa: F401  (pins asyncio at import)

    use("twisted")
    import autobahn.twisted.websocket  # noqa: F401


@contextmanager
def asyncio_txaio() -> Iterator[None]:
    use("asyncio")
    try:
        yield
    finally:
        use("twisted")
