"""Where the SFU's ICE candidates live: a UDP port range and a public (1:1 NAT) address.

aiortc builds its ``aioice.Connection`` deep inside ``RTCIceGatherer`` with no hook for ports
or advertised addresses, so we swap the ``Connection`` class aiortc's module looks up for a
subclass that gathers host candidates our way. The subclass only changes behaviour while a
:data:`ice_policy` context variable is set, i.e. for peer connections created by SFU code;
aiortc clients in the same process (tests, benchmark) keep aioice's defaults.
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import fcntl
import logging
import random
import socket
import struct
import time
from dataclasses import dataclass

import aioice
import aioice.candidate
import aioice.ice
import aiortc.rtcicetransport

from .config import RTCSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IcePolicy:
    public_ip: str | None
    bind_ip: str
    port_min: int
    port_max: int

    @classmethod
    def from_settings(cls, rtc: RTCSettings) -> "IcePolicy":
        return cls(rtc.public_ip, rtc.bind_ip, rtc.udp_port_min, rtc.udp_port_max)


ice_policy: contextvars.ContextVar[IcePolicy | None] = contextvars.ContextVar(
    "media_sfu_ice_policy", default=None
)


class PortRangeExhausted(OSError):
    pass


# Arrival timestamps for the SFU-added latency measurement (benchmark only: costs a syscall
# per datagram). SIOCGSTAMP returns the kernel receive time of the datagram just read, so the
# measurement includes time spent queued in the socket while the event loop was busy.
RECORD_ARRIVALS = False
_SIOCGSTAMP = 0x8906


def _kernel_rx_time(sock: socket.socket | None) -> float:
    if sock is not None:
        try:
            sec, usec = struct.unpack("qq", fcntl.ioctl(sock.fileno(), _SIOCGSTAMP, bytes(16)))
            return sec + usec / 1e6
        except OSError:
            pass
    return time.time()


class _TimestampingStunProtocol(aioice.ice.StunProtocol):
    def datagram_received(self, data, addr) -> None:  # type: ignore[override]
        if RECORD_ARRIVALS:
            self.receiver._sfu_rx_stamp = _kernel_rx_time(self.transport.get_extra_info("socket"))
        super().datagram_received(data, addr)


async def bind_udp_in_range(
    loop: asyncio.AbstractEventLoop, factory, address: str, port_min: int, port_max: int
):
    """Bind a datagram endpoint on a free port of [port_min, port_max] (any port if 0/0)."""
    if port_min == 0:
        return await loop.create_datagram_endpoint(factory, local_addr=(address, 0))
    ports = list(range(port_min, port_max + 1))
    # random start so concurrent gatherers rarely race for the same port
    start = random.randrange(len(ports))
    for port in ports[start:] + ports[:start]:
        try:
            return await loop.create_datagram_endpoint(factory, local_addr=(address, port))
        except OSError:
            continue
    raise PortRangeExhausted(f"no free UDP port in {port_min}-{port_max} on {address}")


class SFUIceConnection(aioice.Connection):
    """aioice Connection whose host candidates obey the SFU's :class:`IcePolicy`."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # captured at construction: the gatherer is built inside SFU code paths
        self._sfu_policy = ice_policy.get()
        self._sfu_rx_stamp = 0.0
        self._sfu_arrivals: collections.deque[float] = collections.deque()
        # wall-clock arrival time of the datagram being processed (RECORD_ARRIVALS only)
        self.current_arrival = 0.0

    def data_received(self, data: bytes, component: int) -> None:
        if RECORD_ARRIVALS:
            self._sfu_arrivals.append(self._sfu_rx_stamp or time.time())
        super().data_received(data, component)

    async def recvfrom(self) -> tuple[bytes, int]:
        result = await super().recvfrom()
        if self._sfu_arrivals:
            self.current_arrival = self._sfu_arrivals.popleft()
        return result

    async def get_component_candidates(self, component: int, addresses: list[str], timeout: int = 5):
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
                foundation=aioice.candidate.candidate_foundation("host", "udp", advertised),
                component=component,
                transport="udp",
                priority=aioice.candidate.candidate_priority(component, "host"),
                host=advertised,
                port=port,
                type="host",
            )
            self._protocols.append(protocol)
            candidates.append(protocol.local_candidate)
        return candidates


_orig_get_host_addresses = aioice.ice.get_host_addresses
_host_cache: dict[tuple[bool, bool], tuple[float, list[str]]] = {}


def _cached_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    # aioice enumerates interfaces (~20 ms of blocking netlink work) for every peer
    # connection; on an SFU that stalls every forwarded packet whenever someone joins
    key = (use_ipv4, use_ipv6)
    hit = _host_cache.get(key)
    now = time.monotonic()
    if hit is None or now - hit[0] > 30:
        hit = _host_cache[key] = (now, _orig_get_host_addresses(use_ipv4, use_ipv6))
    return list(hit[1])


def install() -> None:
    """Point aiortc at :class:`SFUIceConnection` (idempotent)."""
    aiortc.rtcicetransport.Connection = SFUIceConnection
    aioice.ice.get_host_addresses = _cached_host_addresses


class policy_applied:
    """Context manager: peer-connection objects created inside get the SFU's ICE policy."""

    def __init__(self, policy: IcePolicy | None) -> None:
        self.policy = policy
        self._token: contextvars.Token | None = None

    def __enter__(self) -> None:
        self._token = ice_policy.set(self.policy)

    def __exit__(self, *exc) -> None:
        assert self._token is not None
        ice_policy.reset(self._token)
