"""Where the SFU's ICE candidates live: a UDP port range and a public (1:1 NAT) address.

:class:`IcePolicy` comes from ``sfu.rtc``. SFU code creates and negotiates its peer
connections inside :class:`policy_applied`; the aioice connections aiortc creates there pick
the policy up (``aiortc_internals.ice.SFUIceConnection``) and gather host candidates on a
port of the range, advertised under the public address. Connections created elsewhere in the
same process (aiortc clients in tests and the benchmark) keep aioice's defaults.
"""

from __future__ import annotations

import asyncio
import contextvars
import random
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import TypeVar

from .config import RTCSettings


@dataclass(frozen=True)
class IcePolicy:
    public_ip: str | None
    bind_ip: str
    port_min: int
    port_max: int

    @classmethod
    def from_settings(cls, rtc: RTCSettings) -> IcePolicy:
        return cls(rtc.public_ip, rtc.bind_ip, rtc.udp_port_min, rtc.udp_port_max)


_ice_policy: contextvars.ContextVar[IcePolicy | None] = contextvars.ContextVar(
    "media_sfu_ice_policy", default=None
)


def current_policy() -> IcePolicy | None:
    """The policy applied by the innermost :class:`policy_applied` of this context."""
    return _ice_policy.get()


class policy_applied:
    """Context manager: peer-connection objects created inside get the SFU's ICE policy."""

    def __init__(self, policy: IcePolicy | None) -> None:
        self.policy = policy
        self._token: contextvars.Token[IcePolicy | None] | None = None

    def __enter__(self) -> None:
        self._token = _ice_policy.set(self.policy)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._token is not None
        _ice_policy.reset(self._token)


class PortRangeExhausted(OSError):
    pass


P = TypeVar("P", bound=asyncio.DatagramProtocol)


async def bind_udp_in_range(
    loop: asyncio.AbstractEventLoop, factory: Callable[[], P], address: str, port_min: int, port_max: int
) -> tuple[asyncio.DatagramTransport, P]:
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
