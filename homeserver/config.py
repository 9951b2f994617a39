"""WSPR's configuration: one YAML file, validated into typed records at start.

Every problem is reported as a single ``ConfigError`` naming the offending key, so
``wspr run`` can print one clear line instead of a traceback.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
from dataclasses import dataclass, field
from typing import Any

import yaml


class ConfigError(Exception):
    """A bad configuration value; ``str()`` is the one line shown to the operator."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"config error: {key}: {message}")
        self.key = key


# Private and loopback ranges are blocked for outbound federation unless the operator
# opts in (tests on 127.0.0.1 do), matching Synapse's default ip_range_blacklist.
DEFAULT_IP_RANGE_BLOCKLIST = [
    "127.0.0.0/8",
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "100.64.0.0/10",
    "192.0.0.0/24",
    "169.254.0.0/16",
    "192.88.99.0/24",
    "198.18.0.0/15",
    "192.0.2.0/24",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "224.0.0.0/4",
    "0.0.0.0/8",
    "::1/128",
    "fe80::/10",
    "fc00::/7",
    "2001:db8::/32",
    "ff00::/8",
    "fec0::/10",
]


@dataclass(frozen=True)
class ListenerConfig:
    bind_address: str
    port: int


@dataclass(frozen=True)
class FederationListenerConfig(ListenerConfig):
    tls_certificate: str
    tls_private_key: str
    enabled: bool = True


@dataclass(frozen=True)
class MetricsListenerConfig(ListenerConfig):
    enabled: bool = False


@dataclass(frozen=True)
class RateLimit:
    per_second: float
    burst: int


@dataclass(frozen=True)
class RateLimitsConfig:
    enabled: bool = True
    # Generous defaults: a person typing never hits them, a runaway script does.
    message: RateLimit = RateLimit(per_second=10.0, burst=50)
    login: RateLimit = RateLimit(per_second=0.5, burst=10)
    registration: RateLimit = RateLimit(per_second=0.5, burst=10)
    joins: RateLimit = RateLimit(per_second=2.0, burst=20)
    invites: RateLimit = RateLimit(per_second=1.0, burst=20)
    media_upload: RateLimit = RateLimit(per_second=2.0, burst=20)

    def get(self, action: str) -> RateLimit | None:
        if not self.enabled:
            return None
        return getattr(self, action, None)


@dataclass(frozen=True)
class FederationConfig:
    enabled: bool = True
    verify_certificates: bool = True
    ca_file: str | None = None
    ip_range_blocklist: tuple[str, ...] = tuple(DEFAULT_IP_RANGE_BLOCKLIST)
    ip_range_allowlist: tuple[str, ...] = ()
    domain_allowlist: tuple[str, ...] | None = None
    min_retry_interval_s: float = 5.0
    max_retry_interval_s: float = 3600.0


@dataclass(frozen=True)
class MediaConfig:
    store_path: str
    max_upload_size: int = 50 * 1024 * 1024


@dataclass(frozen=True)
class WebClientConfig:
    enabled: bool
    path: str


@dataclass(frozen=True)
class HomeServerConfig:
    config_dir: str
    server_name: str
    public_baseurl: str
    client_listener: ListenerConfig
    federation_listener: FederationListenerConfig
    metrics_listener: MetricsListenerConfig
    database_url: str
    signing_key_path: str
    media: MediaConfig
    web_client: WebClientConfig
    enable_registration: bool = False
    registration_requires_token: bool = False
    allow_guest_access: bool = False
    registration_shared_secret: str | None = None
    rate_limits: RateLimitsConfig = field(default_factory=RateLimitsConfig)
    federation: FederationConfig = field(default_factory=FederationConfig)
    default_room_version: str = "11"
    access_token_lifetime_ms: int | None = None
    log_level: str = "INFO"
    sfu: Any = None  # media_sfu.config.SFUConfig
    # Which users' homeservers may start calls (others may only join running ones).
    rtc_full_access_homeservers: tuple[str, ...] = ()
    config_path: str = ""
    raw: dict[str, Any] = field(default_factory=dict, repr=False)


_SERVER_NAME_RE = re.compile(r"^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.\-]+)(:[0-9]{1,5})?$")
_SIZE_RE = re.compile(r"^\s*(\d+)\s*([KMG]?)B?\s*$", re.IGNORECASE)
_LOG_LEVELS = {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}


class _Reader:
    """Typed access to a nested YAML mapping that knows each value's dotted key."""

    def __init__(self, data: dict[str, Any], prefix: str = "") -> None:
        self.data = data
        self.prefix = prefix

    def key(self, name: str) -> str:
        return f"{self.prefix}{name}"

    def section(self, name: str) -> "_Reader":
        value = self.data.get(name)
        if value is None:
            value = {}
        if not isinstance(value, dict):
            raise ConfigError(self.key(name), "must be a mapping")
        return _Reader(value, f"{self.key(name)}.")

    def get(self, name: str, kind: type | tuple[type, ...], default: Any) -> Any:
        value = self.data.get(name, default)
        if value is None:
            return default
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if kind is int and isinstance(value, bool):
            raise ConfigError(self.key(name), "must be an integer")
        if not isinstance(value, kind):
            names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
            raise ConfigError(self.key(name), f"must be of type {names}, got {value!r}")
        return value

    def port(self, name: str, default: int) -> int:
        value = self.get(name, int, default)
        if not 0 <= value <= 65535:
            raise ConfigError(self.key(name), f"port out of range: {value}")
        return value

    def path(self, name: str, default: str, base: str) -> str:
        value = self.get(name, str, default)
        return value if os.path.isabs(value) else os.path.normpath(os.path.join(base, value))

    def size(self, name: str, default: int) -> int:
        value = self.data.get(name, default)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str):
            m = _SIZE_RE.match(value)
            if m:
                mult = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3}[m.group(2).upper()]
                return int(m.group(1)) * mult
        raise ConfigError(self.key(name), f"must be a size like 50M, got {value!r}")

    def cidrs(self, name: str, default: list[str] | tuple[str, ...]) -> tuple[str, ...]:
        value = self.get(name, list, list(default))
        for item in value:
            try:
                ipaddress.ip_network(str(item), strict=False)
            except ValueError:
                raise ConfigError(self.key(name), f"not a CIDR range: {item!r}") from None
        return tuple(str(v) for v in value)

    def check_known(self, known: set[str]) -> None:
        for name in self.data:
            if name not in known:
                raise ConfigError(self.key(str(name)), "unknown key")


def _rate_limit(reader: _Reader, name: str, default: RateLimit) -> RateLimit:
    sec = reader.section(name)
    sec.check_known({"per_second", "burst"})
    per_second = sec.get("per_second", float, default.per_second)
    burst = sec.get("burst", int, default.burst)
    if per_second <= 0 or burst < 1:
        raise ConfigError(sec.prefix.rstrip("."), "per_second must be > 0 and burst >= 1")
    return RateLimit(per_second=per_second, burst=burst)


def _parse_rate_limits(reader: _Reader) -> RateLimitsConfig:
    sec = reader.section("rate_limits")
    defaults = RateLimitsConfig()
    actions = ["message", "login", "registration", "joins", "invites", "media_upload"]
    sec.check_known({"enabled", *actions})
    kwargs: dict[str, Any] = {"enabled": sec.get("enabled", bool, True)}
    for action in actions:
        kwargs[action] = _rate_limit(sec, action, getattr(defaults, action))
    return RateLimitsConfig(**kwargs)


def _parse_federation(reader: _Reader, base: str) -> FederationConfig:
    sec = reader.section("federation")
    sec.check_known(
        {
            "enabled",
            "verify_certificates",
            "ca_file",
            "ip_range_blocklist",
            "ip_range_allowlist",
            "domain_allowlist",
            "min_retry_interval",
            "max_retry_interval",
        }
    )
    ca_file = sec.get("ca_file", str, None)
    if ca_file is not None:
        ca_file = sec.path("ca_file", ca_file, base)
        if not os.path.exists(ca_file):
            raise ConfigError(sec.key("ca_file"), f"file not found: {ca_file}")
    allow = sec.get("domain_allowlist", list, None)
    min_retry = sec.get("min_retry_interval", float, 5.0)
    max_retry = sec.get("max_retry_interval", float, 3600.0)
    if min_retry <= 0 or max_retry < min_retry:
        raise ConfigError(sec.key("max_retry_interval"), "must be >= min_retry_interval > 0")
    return FederationConfig(
        enabled=sec.get("enabled", bool, True),
        verify_certificates=sec.get("verify_certificates", bool, True),
        ca_file=ca_file,
        ip_range_blocklist=sec.cidrs("ip_range_blocklist", DEFAULT_IP_RANGE_BLOCKLIST),
        ip_range_allowlist=sec.cidrs("ip_range_allowlist", []),
        domain_allowlist=tuple(str(d) for d in allow) if allow is not None else None,
        min_retry_interval_s=min_retry,
        max_retry_interval_s=max_retry,
    )


TOP_LEVEL_KEYS = {
    "server_name",
    "public_baseurl",
    "listeners",
    "database",
    "signing_key_path",
    "media",
    "web_client",
    "enable_registration",
    "registration_requires_token",
    "allow_guest_access",
    "registration_shared_secret",
    "rate_limits",
    "federation",
    "default_room_version",
    "access_token_lifetime",
    "log_level",
    "sfu",
    "rtc_token_service",
}


def parse_config(data: Any, config_dir: str) -> HomeServerConfig:
    if not isinstance(data, dict):
        raise ConfigError("(top level)", "the config file must be a YAML mapping")
    root = _Reader(data)
    root.check_known(TOP_LEVEL_KEYS)

    server_name = root.get("server_name", str, None)
    if not server_name:
        raise ConfigError("server_name", "is required")
    if not _SERVER_NAME_RE.match(server_name):
        raise ConfigError("server_name", f"not a valid Matrix server name: {server_name!r}")

    listeners = root.section("listeners")
    listeners.check_known({"client", "federation", "metrics"})
    client = listeners.section("client")
    client.check_known({"bind_address", "port"})
    client_listener = ListenerConfig(
        bind_address=client.get("bind_address", str, "127.0.0.1"), port=client.port("port", 8008)
    )
    fed = listeners.section("federation")
    fed.check_known({"enabled", "bind_address", "port", "tls_certificate", "tls_private_key"})
    federation_listener = FederationListenerConfig(
        enabled=fed.get("enabled", bool, True),
        bind_address=fed.get("bind_address", str, "0.0.0.0"),
        port=fed.port("port", 8448),
        tls_certificate=fed.path("tls_certificate", "tls.crt", config_dir),
        tls_private_key=fed.path("tls_private_key", "tls.key", config_dir),
    )
    if federation_listener.enabled:
        for key in ("tls_certificate", "tls_private_key"):
            if not os.path.exists(getattr(federation_listener, key)):
                raise ConfigError(fed.key(key), f"file not found: {getattr(federation_listener, key)}")
    met = listeners.section("metrics")
    met.check_known({"enabled", "bind_address", "port"})
    metrics_listener = MetricsListenerConfig(
        enabled=met.get("enabled", bool, False),
        bind_address=met.get("bind_address", str, "127.0.0.1"),
        port=met.port("port", 9008),
    )

    db = root.section("database")
    db.check_known({"url"})
    database_url = db.get("url", str, "sqlite:///wspr.db")
    if database_url.startswith("sqlite:///"):
        path = database_url[len("sqlite:///"):]
        if path != ":memory:" and not os.path.isabs(path):
            database_url = "sqlite:///" + os.path.normpath(os.path.join(config_dir, path))
    elif not database_url.startswith(("postgresql://", "postgres://")):
        raise ConfigError("database.url", "must start with sqlite:/// or postgresql://")

    media = root.section("media")
    media.check_known({"store_path", "max_upload_size"})
    media_config = MediaConfig(
        store_path=media.path("store_path", "media", config_dir),
        max_upload_size=media.size("max_upload_size", 50 * 1024 * 1024),
    )

    web = root.section("web_client")
    web.check_known({"enabled", "path"})
    default_web = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "frontend", "dist")
    web_client = WebClientConfig(enabled=web.get("enabled", bool, True), path=web.path("path", default_web, config_dir))

    default_room_version = str(root.get("default_room_version", (str, int), "11"))
    if default_room_version not in ("10", "11", "12"):
        raise ConfigError("default_room_version", "must be one of 10, 11, 12")

    log_level = root.get("log_level", str, "INFO").upper()
    if log_level not in _LOG_LEVELS:
        raise ConfigError("log_level", f"must be one of {', '.join(sorted(_LOG_LEVELS))}")

    secret = root.get("registration_shared_secret", str, None)
    lifetime = root.get("access_token_lifetime", int, None)
    if lifetime is not None and lifetime <= 0:
        raise ConfigError("access_token_lifetime", "must be a positive number of milliseconds")

    default_baseurl = f"http://{'localhost' if client_listener.bind_address in ('127.0.0.1', '0.0.0.0', '::') else client_listener.bind_address}:{client_listener.port}/"
    public_baseurl = root.get("public_baseurl", str, default_baseurl)
    if not public_baseurl.endswith("/"):
        public_baseurl += "/"

    from media_sfu.config import SFUConfig

    try:
        sfu = SFUConfig.from_dict(root.get("sfu", dict, {}))
    except ValueError as e:
        key, _, message = str(e).partition(": ")
        raise ConfigError(key, message or str(e)) from None
    rtc = root.section("rtc_token_service")
    rtc.check_known({"full_access_homeservers"})
    full_access = rtc.get("full_access_homeservers", list, [server_name])
    if not all(isinstance(s, str) for s in full_access):
        raise ConfigError("rtc_token_service.full_access_homeservers", "must be a list of server names (or \"*\")")

    return HomeServerConfig(
        config_dir=config_dir,
        server_name=server_name,
        public_baseurl=public_baseurl,
        client_listener=client_listener,
        federation_listener=federation_listener,
        metrics_listener=metrics_listener,
        database_url=database_url,
        signing_key_path=root.path("signing_key_path", "signing.key", config_dir),
        media=media_config,
        web_client=web_client,
        enable_registration=root.get("enable_registration", bool, False),
        registration_requires_token=root.get("registration_requires_token", bool, False),
        allow_guest_access=root.get("allow_guest_access", bool, False),
        registration_shared_secret=secret,
        rate_limits=_parse_rate_limits(root),
        federation=_parse_federation(root, config_dir),
        default_room_version=default_room_version,
        access_token_lifetime_ms=lifetime,
        log_level=log_level,
        sfu=sfu,
        rtc_full_access_homeservers=tuple(full_access),
        raw=data,
    )


def load_config(path: str) -> HomeServerConfig:
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except FileNotFoundError:
        raise ConfigError("(file)", f"config file not found: {path}") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError("(file)", f"not valid YAML{where}: {getattr(e, 'problem', e)}") from None
    config = parse_config(data, os.path.dirname(os.path.abspath(path)))
    return dataclasses.replace(config, config_path=os.path.abspath(path))

