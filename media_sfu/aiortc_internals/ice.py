"""ICE host candidates the SFU's way: a UDP port range and a public (1:1 NAT) address.

aiortc builds its ``aioice.Connection`` inside ``RTCIceGatherer.__init__`` from the name
``Connection`` in ``aiortc.rtcicetransport``, with no hook for ports or advertised
addresses. The only ways in are replacing that module global or copying aiortc's private
``RTCPeerConnection.__createDtlsTransport``; :func:`install_ice` does the former, once per
process. The replacement, :class:`SFUIceConnection`, only behaves differently when it was
created while an :class:`~media_sfu.ice.IcePolicy` was applied (``ice.policy_applied``, i.e.
by SFU code), so aiortc clients in the same process (tests, benchmark) keep aioice's
defaults.
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import fcntl
import logging
import socket
import struct
import time
from typing import Any

import aioice
import aioice.ice
import aiortc.rtcicetransport
from aioice.candidate import candidate_foundation, candidate_priority

from ..ice import bind_udp_in_range, current_policy
from .pinned import patch_module

log = logging.getLogger(__name__)

# Arrival timestamps for the SFU-added latency measurement (benchmark only: costs a syscall
# per datagram). SIOCGSTAMP returns the kernel receive time of the datagram just read, so the
# measurement includes time spent queued in the socket while the event loop was busy.
_record_arrivals = False
_SIOCGSTAMP = 0x8906


def record_arrivals(enabled: bool) -> None:
    """Timestamp every received datagram (``SFUIceConnection.current_arrival``); costly."""
    global _record_arrivals
    _record_arrivals = enabled


def _kernel_rx_time(sock: socket.socket | None) -> float:
    if sock is not None:
        try:
            sec, usec = struct.unpack("qq", fcntl.ioctl(sock.fileno(), _SIOCGSTAMP, bytes(16)))
            return sec + usec / 1e6
        except OSError:
            pass
    return time.time()


class _TimestampingStunProtocol(aioice.ice.StunProtocol):
    def __init__(self, receiver: SFUIceConnection) -> None:
        super().__init__(receiver)
        self._sfu_connection = receiver

    def datagram_received(self, data: bytes | str, addr: tuple[Any, ...]) -> None:
        if _record_arrivals:
            self._sfu_connection.rx_stamp = _kernel_rx_time(self.transport.get_extra_info("socket"))
        super().datagram_received(data, addr)


class SFUIceConnection(aioice.Connection):
    """aioice Connection whose host candidates obey the SFU's :class:`IcePolicy`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # captured at construction: the gatherer is built inside SFU code paths
        self._sfu_policy = current_policy()
        # kernel receive time of the datagram being delivered (record_arrivals only)
        self.rx_stamp = 0.0
        self._sfu_arrivals: collections.deque[float] = collections.deque()
        # wall-clock arrival time of the datagram being processed (record_arrivals only)
        self.current_arrival = 0.0

    def data_received(self, data: bytes, component: int) -> None:
        if _record_arrivals:
            self._sfu_arrivals.append(self.rx_stamp or time.time())
        super().data_received(data, component)

    async def recvfrom(self) -> tuple[bytes, int]:
        result = await super().recvfrom()
        if self._sfu_arrivals:
            self.current_arrival = self._sfu_arrivals.popleft()
        return result

    async def gather_candidates(self) -> None:
        token = _sfu_gathering.set(self._sfu_policy is not None)
        try:
            await super().gather_candidates()
        finally:
            _sfu_gathering.reset(token)

    async def get_component_candidates(
        self, component: int, addresses: list[str], timeout: int = 5
    ) -> list[aioice.Candidate]:
        policy = self._sfu_policy
        if policy is None:
            return await super().get_component_candidates(component, addresses, timeout)
        loop = asyncio.get_running_loop()
        if policy.public_ip:
            # one socket on the bind address, advertised under the public address
            binds = [(policy.bind_ip, policy.public_ip)]
        else:
            binds = [(a, a) for a in addresses]
        candidates = []
        for bind_addr, advertised in binds:
            try:
                transport, protocol = await bind_udp_in_range(
                    loop, lambda: _TimestampingStunProtocol(self), bind_addr,
                    policy.port_min, policy.port_max,
                )
            except OSError as exc:
                log.warning("ICE: could not bind %s: %s", bind_addr, exc)
                continue
            sock = transport.get_extra_info("socket")
            if sock is not None:
                try:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 21)
                except OSError:
                    pass
            port = transport.get_extra_info("sockname")[1]
            protocol.local_candidate = aioice.Candidate(
                foundation=candidate_foundation("host", "udp", advertised),
                component=component,
                transport="udp",
                priority=candidate_priority(component, "host"),
                host=advertised,
                port=port,
                type="host",
            )
            self._protocols.append(protocol)
            candidates.append(protocol.local_candidate)
        return candidates


# True while an SFU connection gathers: only those use the host-address cache
_sfu_gathering: contextvars.ContextVar[bool] = contextvars.ContextVar("media_sfu_gathering", default=False)
_aioice_get_host_addresses = aioice.ice.get_host_addresses
_host_cache: dict[tuple[bool, bool], tuple[float, list[str]]] = {}


def _cached_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    # aioice enumerates interfaces (~20 ms of blocking netlink work) for every peer
    # connection; on an SFU that stalls every forwarded packet whenever someone joins
    if not _sfu_gathering.get():
        return _aioice_get_host_addresses(use_ipv4, use_ipv6)
    key = (use_ipv4, use_ipv6)
    hit = _host_cache.get(key)
    now = time.monotonic()
    if hit is None or now - hit[0] > 30:
        hit = _host_cache[key] = (now, _aioice_get_host_addresses(use_ipv4, use_ipv6))
    return list(hit[1])


def install_ice() -> None:
    """Point aiortc at :class:`SFUIceConnection` and aioice at the host-address cache.

    Idempotent. Both are module globals aiortc/aioice look up at call time, with no
    per-connection hook (see the module docstring); both replacements behave exactly like
    the originals for connections not created by SFU code.
    """
    patch_module(aiortc.rtcicetransport, "Connection", SFUIceConnection)
    patch_module(aioice.ice, "get_host_addresses", _cached_host_addresses)
