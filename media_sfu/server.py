"""The SFU process: a WebSocket signalling listener plus the rooms it serves (asyncio)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import socket
import threading
from typing import Any

from . import aiortc_internals, ice
from .config import SFUConfig
from .forwarding import STATS
from .ids import new_id
from .room import RoomManager
from .signalling import make_factory

log = logging.getLogger(__name__)


class SFUServer:
    """``await SFUServer(config).start()`` ... ``await stop()``, inside a running asyncio loop.

    Code that is not asyncio (a Twisted test, say) can use :meth:`start_in_thread` /
    :meth:`stop_in_thread`, which run the SFU on its own event loop in a daemon thread.
    """

    def __init__(self, config: SFUConfig) -> None:
        self.config = config
        self.secrets = {config.api_key: config.api_secret}
        self.rooms = RoomManager(speaker_interval=config.speaker_interval)
        self.ice_policy = ice.IcePolicy.from_settings(config.rtc)
        self.node_id = new_id("ND_")
        self.stats = STATS
        self._server: asyncio.base_events.Server | None = None
        self.port: int | None = None
        self._thread: threading.Thread | None = None
        self._thread_loop: asyncio.AbstractEventLoop | None = None

    @property
    def url(self) -> str:
        """ws URL of the signalling listener as actually bound (port 0 → the chosen port)."""
        return f"ws://{self.config.bind_address}:{self.port}"

    async def start(self) -> None:
        # fail at startup, not on the first call, if a pinned-aiortc assumption broke
        await aiortc_internals.verify()
        aiortc_internals.install()
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            make_factory(self), self.config.bind_address, self.config.port,
            family=socket.AF_INET6 if ":" in self.config.bind_address else socket.AF_INET,
            reuse_address=True,
        )
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("SFU listening on %s (public URL %s)", self.url, self.config.effective_public_url)

    def start_in_thread(self, timeout: float = 10) -> str:
        """Start on a private event loop in a daemon thread; return the ws URL."""
        loop = asyncio.new_event_loop()
        started: concurrent.futures.Future[str] = concurrent.futures.Future()

        def run() -> None:
            asyncio.set_event_loop(loop)

            async def boot() -> None:
                try:
                    await self.start()
                    started.set_result(self.url)
                except BaseException as e:  # noqa: BLE001 - re-raised in the caller's thread by result()
                    started.set_exception(e)

            loop.create_task(boot())
            loop.run_forever()
            loop.close()

        self._thread_loop = loop
        self._thread = threading.Thread(target=run, name="media_sfu", daemon=True)
        self._thread.start()
        return started.result(timeout)

    def stop_in_thread(self, timeout: float = 10) -> None:
        loop, thread = self._thread_loop, self._thread
        if loop is None or thread is None:
            return
        asyncio.run_coroutine_threadsafe(self.stop(), loop).result(timeout)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)
        self._thread = self._thread_loop = None

    def debug_stats(self, *, reset: bool = False, latency: str | None = None) -> dict[str, Any]:
        """Counters for benchmarks (served at /debug/stats when sfu.debug_stats is on)."""
        st = self.stats

        def summary(values: list[float]) -> dict[str, float | None]:
            v = sorted(values)

            def pct(q: float) -> float | None:
                return v[min(len(v) - 1, int(q * len(v)))] * 1000 if v else None

            return {"count": len(v), "p50": pct(0.5), "p99": pct(0.99), "max": v[-1] * 1000 if v else None}

        out = {
            "packets_in": st.packets_in,
            "packets_out": st.packets_out,
            "bytes_out": st.bytes_out,
            # kernel receive timestamp -> forwarded copy handed to the socket
            "latency_ms": summary(st.latencies),
            # tap entry -> forwarded copy handed to the socket (excludes waiting for the loop)
            "processing_ms": summary(st.processing),
            "rooms": len(self.rooms.rooms),
            "participants": sum(len(r.participants) for r in self.rooms.rooms.values()),
            "cpu_seconds": sum(os.times()[:2]),
        }
        if reset:
            st.reset()
        if latency in ("0", "1"):
            st.collect_latency = latency == "1"
            aiortc_internals.record_arrivals(st.collect_latency)
        return out

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        await self.rooms.close_all()
        if self._server is not None:
            try:
                await asyncio.wait_for(self._server.wait_closed(), 2)
            except TimeoutError:
                pass
            self._server = None
        log.info("SFU stopped")
