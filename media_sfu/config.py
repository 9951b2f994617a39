"""Configuration of the SFU: the `sfu:` section of wspr.yaml.

The homeserver's config loader calls :meth:`SFUConfig.from_dict` on that section, so every
error names the offending key as ``sfu.<key>`` and is a :class:`SFUConfigError` (a ``ValueError``).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


class SFUConfigError(ValueError):
    """A bad ``sfu:`` section (wrong types included: the homeserver reports every config error alike)."""


@dataclass(frozen=True)
class IceServer:
    """A STUN/TURN server handed to clients in the JoinResponse (clients behind NAT need it)."""

    urls: tuple[str, ...]
    username: str = ""
    credential: str = ""


@dataclass(frozen=True)
class RTCSettings:
    """How the SFU's own ICE candidates look.

    ``public_ip``: the address advertised in host candidates (1:1 NAT, like LiveKit's
    ``node_ip``). When set, the SFU binds each media socket on ``bind_ip`` (default 0.0.0.0) and
    advertises ``public_ip`` with the same port. When unset, it binds every interface address
    and advertises them as they are.
    ``udp_port_min``/``udp_port_max``: inclusive range for media sockets (one per peer
    connection, thanks to BUNDLE), so a firewall can open exactly that range. 0/0 = any port.
    """

    public_ip: str | None = None
    bind_ip: str = "0.0.0.0"
    udp_port_min: int = 0
    udp_port_max: int = 0


@dataclass(frozen=True)
class SFUConfig:
    enabled: bool = True
    bind_address: str = "127.0.0.1"
    port: int = 7880
    # ws(s) URL handed to clients by the token service; defaults to ws://bind_address:port
    public_url: str = ""
    api_key: str = "wspr"
    api_secret: str = ""
    rtc: RTCSettings = field(default_factory=RTCSettings)
    ice_servers: tuple[IceServer, ...] = ()
    # LiveKit's defaults; clients reconnect if they hear nothing for ping_timeout seconds
    ping_interval: int = 5
    ping_timeout: int = 15
    # connected clients get a fresh access token this often (SignalResponse.refresh_token), so a
    # rejoin after the original token expired (calls longer than its TTL) still works
    token_refresh_interval: float = 600.0
    # at most one PLI per publisher track per this many seconds, however many subscribers ask
    pli_interval: float = 0.5
    # period of active-speaker updates
    speaker_interval: float = 0.5
    log_level: str = "INFO"
    # accept every simulcast layer browsers offer and give each subscriber the one it asks for
    # (adaptive stream); false: browsers send only their top layer
    simulcast: bool = True
    # tell simulcast publishers which layers anyone watches (SubscribedQualityUpdate), so
    # they stop encoding and sending the others
    dynacast: bool = True
    # GET /debug/stats on the signalling port: forwarding counters and latency (benchmarks)
    debug_stats: bool = False

    @property
    def effective_public_url(self) -> str:
        return self.public_url or f"ws://{self.bind_address}:{self.port}"

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> SFUConfig:
        if d is None:
            d = {}
        if not isinstance(d, dict):
            raise SFUConfigError("sfu: must be a mapping")
        known = {
            "enabled", "bind_address", "port", "public_url", "api_key", "api_secret", "rtc",
            "ice_servers", "ping_interval", "ping_timeout", "pli_interval", "token_refresh_interval",
            "speaker_interval", "log_level", "debug_stats", "simulcast", "dynacast",
        }
        unknown = sorted(set(d) - known)
        if unknown:
            raise SFUConfigError(f"sfu.{unknown[0]}: unknown key")
        defaults = cls()

        enabled = _bool(d, "enabled", defaults.enabled)
        bind_address = _str(d, "bind_address", defaults.bind_address)
        _ip(bind_address, "bind_address")
        port = _int(d, "port", defaults.port, 0, 65535)
        public_url = _str(d, "public_url", defaults.public_url)
        if public_url and not public_url.startswith(("ws://", "wss://", "http://", "https://")):
            raise SFUConfigError("sfu.public_url: must start with ws://, wss://, http:// or https://")
        public_url = public_url.rstrip("/")
        api_key = _str(d, "api_key", defaults.api_key)
        if not api_key:
            raise SFUConfigError("sfu.api_key: must not be empty")
        api_secret = _str(d, "api_secret", defaults.api_secret)
        if enabled and len(api_secret) < 32:
            # HS256 with a short secret is brute-forceable; LiveKit itself demands 32 chars
            raise SFUConfigError("sfu.api_secret: must be at least 32 characters")

        rtc_d = d.get("rtc") or {}
        if not isinstance(rtc_d, dict):
            raise SFUConfigError("sfu.rtc: must be a mapping")
        bad = sorted(set(rtc_d) - {"public_ip", "bind_ip", "udp_port_min", "udp_port_max"})
        if bad:
            raise SFUConfigError(f"sfu.rtc.{bad[0]}: unknown key")
        public_ip = rtc_d.get("public_ip")
        if public_ip is not None:
            if not isinstance(public_ip, str):
                raise SFUConfigError("sfu.rtc.public_ip: must be an IP address string")
            _ip(public_ip, "rtc.public_ip")
        bind_ip = _str(rtc_d, "bind_ip", "0.0.0.0", "rtc.bind_ip")
        _ip(bind_ip, "rtc.bind_ip")
        pmin = _int(rtc_d, "udp_port_min", 0, 0, 65535, "rtc.udp_port_min")
        pmax = _int(rtc_d, "udp_port_max", 0, 0, 65535, "rtc.udp_port_max")
        if (pmin == 0) != (pmax == 0):
            raise SFUConfigError("sfu.rtc.udp_port_max: udp_port_min and udp_port_max go together")
        if pmin > pmax:
            raise SFUConfigError("sfu.rtc.udp_port_max: must be >= udp_port_min")
        rtc = RTCSettings(public_ip=public_ip, bind_ip=bind_ip, udp_port_min=pmin, udp_port_max=pmax)

        servers_raw = d.get("ice_servers") or []
        if not isinstance(servers_raw, list):
            raise SFUConfigError("sfu.ice_servers: must be a list")
        servers = []
        for i, s in enumerate(servers_raw):
            key = f"ice_servers[{i}]"
            if not isinstance(s, dict):
                raise SFUConfigError(f"sfu.{key}: must be a mapping")
            urls = s.get("urls")
            if isinstance(urls, str):
                urls = [urls]
            if not urls or not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
                raise SFUConfigError(f"sfu.{key}.urls: must be a non-empty list of strings")
            for u in urls:
                if not u.startswith(("stun:", "stuns:", "turn:", "turns:")):
                    raise SFUConfigError(f"sfu.{key}.urls: {u!r} is not a stun:/turn: URL")
            servers.append(IceServer(
                urls=tuple(urls),
                username=_str(s, "username", "", f"{key}.username"),
                credential=_str(s, "credential", "", f"{key}.credential"),
            ))

        ping_interval = _int(d, "ping_interval", defaults.ping_interval, 1, 3600)
        ping_timeout = _int(d, "ping_timeout", defaults.ping_timeout, 2, 3600)
        if ping_timeout <= ping_interval:
            raise SFUConfigError("sfu.ping_timeout: must be greater than ping_interval")
        pli_interval = _float(d, "pli_interval", defaults.pli_interval, 0, 60)
        token_refresh_interval = _float(d, "token_refresh_interval", defaults.token_refresh_interval, 1, 86400)
        speaker_interval = _float(d, "speaker_interval", defaults.speaker_interval, 0.05, 60)
        log_level = _str(d, "log_level", defaults.log_level).upper()
        if log_level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            raise SFUConfigError("sfu.log_level: must be DEBUG, INFO, WARNING, ERROR or CRITICAL")

        debug_stats = _bool(d, "debug_stats", defaults.debug_stats)
        simulcast = _bool(d, "simulcast", defaults.simulcast)
        dynacast = _bool(d, "dynacast", defaults.dynacast)
        return cls(
            dynacast=dynacast,
            debug_stats=debug_stats,
            simulcast=simulcast,
            enabled=enabled, bind_address=bind_address, port=port, public_url=public_url,
            api_key=api_key, api_secret=api_secret, rtc=rtc, ice_servers=tuple(servers),
            ping_interval=ping_interval, ping_timeout=ping_timeout,
            pli_interval=pli_interval, token_refresh_interval=token_refresh_interval,
            speaker_interval=speaker_interval, log_level=log_level,
        )

    @classmethod
    def from_yaml_file(cls, path: str | Path) -> SFUConfig:
        with open(path, encoding="utf-8") as f:
            doc = yaml.safe_load(f) or {}
        if not isinstance(doc, dict):
            raise SFUConfigError(f"{path}: top level must be a mapping")
        return cls.from_dict(doc.get("sfu"))


def _str(d: dict, key: str, default: str, name: str | None = None) -> str:
    v = d.get(key, default)
    if v is None:
        return default
    if not isinstance(v, str):
        raise SFUConfigError(f"sfu.{name or key}: must be a string")
    return v


def _bool(d: dict, key: str, default: bool) -> bool:
    v = d.get(key, default)
    if not isinstance(v, bool):
        raise SFUConfigError(f"sfu.{key}: must be true or false")
    return v


def _int(d: dict, key: str, default: int, lo: int, hi: int, name: str | None = None) -> int:
    v = d.get(key, default)
    if isinstance(v, bool) or not isinstance(v, int):
        raise SFUConfigError(f"sfu.{name or key}: must be an integer")
    if not lo <= v <= hi:
        raise SFUConfigError(f"sfu.{name or key}: must be between {lo} and {hi}")
    return v


def _float(d: dict, key: str, default: float, lo: float, hi: float) -> float:
    v = d.get(key, default)
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise SFUConfigError(f"sfu.{key}: must be a number")
    if not lo <= v <= hi:
        raise SFUConfigError(f"sfu.{key}: must be between {lo} and {hi}")
    return float(v)


def _ip(v: str, name: str) -> None:
    try:
        ipaddress.ip_address(v)
    except ValueError:
        raise SFUConfigError(f"sfu.{name}: {v!r} is not an IP address") from None
