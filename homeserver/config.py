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
from typing import Any, TypeGuard

import yaml

from homeserver.protocol.room_versions import DEFAULT_ROOM_VERSION, KNOWN_ROOM_VERSIONS
from homeserver.push.config import PushConfig
from homeserver.util.ids import check_localpart
from homeserver.util.ip_filter import DEFAULT_IP_RANGE_BLOCKLIST, DEFAULT_TRUSTED_PROXIES
from homeserver.websocket.config import WebSocketConfig


class ConfigError(Exception):
    """A bad configuration value; ``str()`` is the one line shown to the operator."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"config error: {key}: {message}")
        self.key = key


# What a listener serves, as Synapse's listeners[].resources[].names: "client" (the
# client API, /.well-known, the admin API, the sign-in pages; with the web client and
# /_matrix/media, as Synapse's includes static and media), "federation" (the server-server
# API and /_matrix/key; with /_matrix/media), "media" (/_matrix/media and the client and
# federation media endpoints), "metrics" (Prometheus, /metrics and /_synapse/metrics) and
# "static" (the web client alone).
RESOURCE_NAMES = ("client", "federation", "media", "metrics", "static")


@dataclass(frozen=True)
class ListenerConfig:
    bind_address: str
    port: int
    # Behind a reverse proxy: the client's address comes from X-Forwarded-For, but only
    # when the connection comes from one of `trusted_proxies` (CIDRs). Applies to every
    # request the listener serves (federation requests do not depend on the peer's
    # address: they are authenticated by their origin's signature).
    x_forwarded: bool = field(default=False, kw_only=True)
    trusted_proxies: tuple[str, ...] = field(default=(), kw_only=True)
    resources: tuple[str, ...] = field(default=("client",), kw_only=True)


@dataclass(frozen=True)
class FederationListenerConfig(ListenerConfig):
    tls_certificate: str
    tls_private_key: str
    enabled: bool = True


@dataclass(frozen=True)
class MetricsListenerConfig(ListenerConfig):
    enabled: bool = False


def check_server_name(server_name: str | None) -> str:
    if not server_name:
        raise ConfigError("server_name", "is required")
    if not _SERVER_NAME_RE.match(server_name):
        raise ConfigError("server_name", f"not a valid Matrix server name: {server_name!r}")
    return server_name


def check_public_baseurl(url: str) -> str:
    """``public_baseurl`` checked, with its trailing slash."""
    if not re.match(r"^https?://[^/?#\s]+(/[^?#\s]*)?$", url):
        raise ConfigError("public_baseurl", f"must be an http:// or https:// URL, got {url!r}")
    return url if url.endswith("/") else url + "/"


def default_public_baseurl(server_name: str, http_port: int) -> str:
    """Where clients reach the client API unless ``public_baseurl`` says otherwise:
    ``http://localhost:<client port>/`` for a loopback server name (a server tried on
    this machine, ``localhost`` or ``127.0.0.1:8448``), ``https://<host>/`` for any other
    (behind a TLS proxy on 443). Synapse's default is ``https://<server_name>/`` with the
    server name's port; that port is the federation port, not where clients go."""
    host = server_name.rsplit(":", 1)[0] if not server_name.startswith("[") else server_name.split("]")[0] + "]"
    bare = host.strip("[]")
    try:
        loopback = ipaddress.ip_address(bare).is_loopback
    except ValueError:
        loopback = bare == "localhost" or bare.endswith(".localhost")
    if loopback:
        return f"http://localhost:{http_port}/"
    return f"https://{host}/"


@dataclass(frozen=True)
class RateLimit:
    per_second: float
    burst: int


@dataclass(frozen=True)
class RateLimitsConfig:
    enabled: bool = True
    # Generous defaults: a person typing never hits them, a runaway script does.
    message: RateLimit = RateLimit(per_second=10.0, burst=50)
    # Every /login request, per client IP (Synapse's rc_login.address).
    login: RateLimit = RateLimit(per_second=0.5, burst=10)
    # Successful logins, per account (Synapse's rc_login.account).
    login_account: RateLimit = RateLimit(per_second=0.05, burst=10)
    # Wrong passwords, at /login and in user-interactive auth, per (account, client IP):
    # Synapse's rc_login.failed_attempts and its defaults, but keyed by the IP as well, so
    # that guesses from one address never lock the owner out from another.
    login_failed_attempts: RateLimit = RateLimit(per_second=0.17, burst=3)
    registration: RateLimit = RateLimit(per_second=0.5, burst=10)
    joins: RateLimit = RateLimit(per_second=2.0, burst=20)
    invites: RateLimit = RateLimit(per_second=1.0, burst=20)
    media_upload: RateLimit = RateLimit(per_second=2.0, burst=20)
    # Reports of rooms and users, per reporter (Synapse's rc_reports and its defaults).
    reports: RateLimit = RateLimit(per_second=1.0, burst=5)
    # E-mails asked for (address verification, password reset), per client address and
    # per destination address.
    email_requests: RateLimit = RateLimit(per_second=0.05, burst=5)

    def get(self, action: str) -> RateLimit | None:
        if not self.enabled:
            return None
        return getattr(self, action, None)


@dataclass(frozen=True)
class FederationConfig:
    enabled: bool = True
    verify_certificates: bool = True
    ca_file: str | None = None
    ip_range_blocklist: tuple[str, ...] = DEFAULT_IP_RANGE_BLOCKLIST
    ip_range_allowlist: tuple[str, ...] = ()
    domain_allowlist: tuple[str, ...] | None = None
    min_retry_interval_s: float = 5.0
    max_retry_interval_s: float = 3600.0


@dataclass(frozen=True)
class ThumbnailSize:
    width: int
    height: int
    method: str  # "crop" or "scale"


# Synapse's default thumbnail_sizes: the only thumbnails ever made (a request is answered
# with the nearest of them), so each image has at most this many on disk.
DEFAULT_THUMBNAIL_SIZES = (
    ThumbnailSize(32, 32, "crop"),
    ThumbnailSize(96, 96, "crop"),
    ThumbnailSize(320, 240, "scale"),
    ThumbnailSize(640, 480, "scale"),
    ThumbnailSize(800, 600, "scale"),
)


@dataclass(frozen=True)
class MediaConfig:
    store_path: str
    max_upload_size: int = 50 * 1024 * 1024
    # Images with more pixels are not thumbnailed (Synapse's max_image_pixels, 32M).
    max_image_pixels: int = 32 * 1024 * 1024
    thumbnail_sizes: tuple[ThumbnailSize, ...] = DEFAULT_THUMBNAIL_SIZES
    # Media uploaded (or fetched from other servers) while this is on is served only on
    # the authenticated /_matrix/client/v1/media endpoints, as Synapse's option of the name.
    enable_authenticated_media: bool = True
    # How long fetching media of another server (or a page or image to preview) may take:
    # for the answer to begin, and again for its body (Synapse: 60 s each).
    remote_fetch_timeout_s: float = 60.0
    url_preview: UrlPreviewConfig = field(default_factory=lambda: UrlPreviewConfig())


@dataclass(frozen=True)
class UrlPreviewConfig:
    """URL previews (/preview_url), with Synapse's keys (read from the ``media`` section)."""

    enabled: bool = False
    # Addresses a preview may never fetch from (a redirect's too); the allowlist punches
    # holes in it. As Synapse, 0.0.0.0 and :: are always blocked.
    ip_range_blocklist: tuple[str, ...] = DEFAULT_IP_RANGE_BLOCKLIST
    ip_range_allowlist: tuple[str, ...] = ()
    # Synapse's url_preview_url_blacklist: each entry maps urlsplit() attributes (scheme,
    # netloc, path, ...) to a glob, or a regex when it starts with ^; a URL matching every
    # attribute of an entry is refused.
    url_blocklist: tuple[dict[str, str], ...] = ()
    # The most a page or image to preview may weigh (Synapse's max_spider_size).
    max_spider_size: int = 10 * 1024 * 1024


@dataclass(frozen=True)
class WebClientConfig:
    enabled: bool
    path: str


@dataclass(frozen=True)
class JwtLoginConfig:
    """``org.matrix.login.jwt`` logins, configured as Synapse's ``jwt_config``."""

    enabled: bool = False
    secret: str = ""
    algorithm: str = "HS256"
    subject_claim: str = "sub"
    display_name_claim: str | None = None
    issuer: str | None = None
    audiences: tuple[str, ...] | None = None


@dataclass(frozen=True)
class RedisConfig:
    """Redis fans revocations out to the other processes sharing the database."""

    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = 6379
    password: str | None = None
    dbid: int = 0


@dataclass(frozen=True)
class MfaConfig:
    """Second factors on the sign-in pages (TOTP, passkeys, recovery codes)."""

    # Every user must have a second factor: one without is taken through enrolment at
    # their next sign-in on the pages.
    required: bool = False
    # The issuer authenticator apps show next to the account (default: the server name).
    totp_issuer: str | None = None


@dataclass(frozen=True)
class EmailConfig:
    """Outgoing e-mail (address verification, password reset), with Synapse's ``email``
    keys. No ``smtp_host``: e-mail is off."""

    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_user: str | None = None
    smtp_pass: str | None = None
    # Implicit TLS from the first byte (port 465).
    force_tls: bool = False
    # Refuse to send unless STARTTLS is offered and succeeds.
    require_transport_security: bool = False
    # Use STARTTLS when the server offers it.
    enable_tls: bool = True
    # Check the SMTP server's certificate (turn off only for a local relay).
    verify_tls_certificates: bool = True
    notif_from: str = ""
    app_name: str = "WSPR"
    # How long a verification or password reset link works (milliseconds).
    validation_token_lifetime_ms: int = 3600 * 1000

    @property
    def enabled(self) -> bool:
        return bool(self.smtp_host)


@dataclass(frozen=True)
class AuthConfig:
    """Sign-in: the OAuth 2.0 API, the sign-in pages, token formats."""

    # "enabled": the legacy POST /login m.login.password works next to the OAuth 2.0 API;
    # "oauth_only": the server answers as one that requires the OAuth 2.0 API.
    password_login: str = "enabled"
    # Access tokens of the legacy /login and /register: "jwt" or "opaque".
    access_token_format: str = "jwt"
    # The JWKS file of the access-token signing keys (created at first start).
    signing_keys_path: str = "access_token_keys.json"
    oauth_enabled: bool = True
    jwt_login: JwtLoginConfig = field(default_factory=JwtLoginConfig)
    redis: RedisConfig = field(default_factory=RedisConfig)
    # How the sign-in pages check passwords: "argon2" (the browser sends the password,
    # the server keeps an argon2id hash) or "opaque" (RFC 9807: the browser runs OPAQUE,
    # the server keeps a registration record and never sees the password).
    password_auth: str = "argon2"
    mfa: MfaConfig = field(default_factory=MfaConfig)
    # The sign-in secrets (the OPAQUE server setup, the recovery-code key), created at
    # first start. Losing it makes every OPAQUE password and recovery code useless.
    secrets_path: str = "sign_in_secrets.json"


@dataclass(frozen=True)
class ServerNoticesConfig:
    """Synapse's server_notices: the account that sends server notices (none: off) and
    the room they arrive in."""

    system_mxid_localpart: str | None = None
    system_mxid_display_name: str | None = None
    system_mxid_avatar_url: str | None = None
    room_name: str | None = "Server Notices"
    room_avatar_url: str | None = None
    room_topic: str | None = None
    auto_join: bool = False


@dataclass(frozen=True)
class WebPushConfig:
    """WSPR's Web Push gateway (homeserver/push_gateway): browsers' pushers point at
    /_wspr/push/v1/notify on this server."""

    enabled: bool = True
    # The VAPID private key (P-256 PEM), created at first start; relative to the config.
    vapid_private_key_path: str = "web_push_vapid.pem"
    # The contact push services see in each push's VAPID token (mailto: or https:);
    # default: public_baseurl.
    subject: str | None = None


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
    default_room_version: str = DEFAULT_ROOM_VERSION
    # The m.server of /.well-known/matrix/server (None: not served; serve_server_wellknown
    # or well_known_server).
    well_known_server: str | None = None
    access_token_lifetime_ms: int | None = None
    log_level: str = "INFO"
    sfu: Any = None  # media_sfu.config.SFUConfig
    # Which users' homeservers may start calls (others may only join running ones).
    rtc_full_access_homeservers: tuple[str, ...] = ()
    # SQLite's PRAGMA synchronous: "normal" (WAL: a power cut may lose the last commits)
    # or "full" (every commit on disk before it is acknowledged). PostgreSQL ignores it.
    database_synchronous: str = "normal"
    auth: AuthConfig = field(default_factory=AuthConfig)
    server_notices: ServerNoticesConfig = field(default_factory=ServerNoticesConfig)
    email: EmailConfig = field(default_factory=EmailConfig)
    # Push gateways and badge counts (homeserver/push/config.py).
    push: PushConfig = field(default_factory=PushConfig)
    # The WebSocket stream (homeserver/websocket/config.py, docs/websocket.md).
    websocket: WebSocketConfig = field(default_factory=WebSocketConfig)
    web_push: WebPushConfig = field(default_factory=WebPushConfig)
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

    def section(self, name: str) -> _Reader:
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
    actions = [f.name for f in dataclasses.fields(RateLimitsConfig) if f.name != "enabled"]
    sec.check_known({"enabled", *actions})
    kwargs: dict[str, Any] = {"enabled": sec.get("enabled", bool, True)}
    for action in actions:
        kwargs[action] = _rate_limit(sec, action, getattr(defaults, action))
    return RateLimitsConfig(**kwargs)


_FORWARDED_KEYS = {"x_forwarded", "trusted_proxies"}


def _resources(listener: _Reader, default: tuple[str, ...]) -> tuple[str, ...]:
    """A listener's ``resources``, in Synapse's shape: ``[{names: [client, federation]}]``
    (``compress`` is taken and ignored: WSPR does not compress responses)."""
    value = listener.get("resources", list, None)
    if value is None:
        return default
    key = listener.key("resources")
    names: list[str] = []
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            raise ConfigError(f"{key}[{i}]", "must be a mapping like {names: [client, federation]}")
        for extra in item:
            if extra not in ("names", "compress"):
                raise ConfigError(f"{key}[{i}].{extra}", "unknown key")
        if not isinstance(item.get("compress", False), bool):
            raise ConfigError(f"{key}[{i}].compress", "must be true or false")
        listed = item.get("names")
        if not isinstance(listed, list) or not listed:
            raise ConfigError(f"{key}[{i}].names", "must be a list of resource names")
        for name in listed:
            if name not in RESOURCE_NAMES:
                raise ConfigError(f"{key}[{i}].names", f"unknown resource {name!r} (one of {', '.join(RESOURCE_NAMES)})")
            if name not in names:
                names.append(name)
    if not names:
        raise ConfigError(key, "must name at least one resource")
    return tuple(names)


def _forwarded(listener: _Reader) -> dict[str, Any]:
    """A listener's x_forwarded and trusted_proxies (loopback unless given: a proxy on the
    same machine, the usual set-up)."""
    x_forwarded = listener.get("x_forwarded", bool, False)
    trusted = listener.cidrs("trusted_proxies", DEFAULT_TRUSTED_PROXIES if x_forwarded else ())
    if x_forwarded and not trusted:
        raise ConfigError(listener.key("trusted_proxies"), "x_forwarded needs at least one trusted proxy range")
    return {"x_forwarded": x_forwarded, "trusted_proxies": trusted}


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


def _thumbnail_dimension(v: Any) -> TypeGuard[int]:
    return isinstance(v, int) and not isinstance(v, bool) and 0 < v <= 10000


def _thumbnail_sizes(media: _Reader) -> tuple[ThumbnailSize, ...]:
    value = media.get("thumbnail_sizes", list, None)
    if value is None:
        return DEFAULT_THUMBNAIL_SIZES
    key = media.key("thumbnail_sizes")
    sizes = []
    for i, item in enumerate(value):
        if not isinstance(item, dict) or set(item) - {"width", "height", "method"}:
            raise ConfigError(f"{key}[{i}]", "must be a mapping of width, height and method")
        width, height, method = item.get("width"), item.get("height"), item.get("method", "scale")
        if not (_thumbnail_dimension(width) and _thumbnail_dimension(height)):
            raise ConfigError(f"{key}[{i}]", "width and height must be integers from 1 to 10000")
        if method not in ("crop", "scale"):
            raise ConfigError(f"{key}[{i}].method", "must be crop or scale")
        sizes.append(ThumbnailSize(width, height, method))
    if not sizes:
        raise ConfigError(key, "must list at least one size")
    return tuple(sizes)


_URL_PREVIEW_KEYS = {
    "url_preview_enabled",
    "url_preview_ip_range_blacklist",
    "url_preview_ip_range_whitelist",
    "url_preview_url_blacklist",
    "max_spider_size",
}
_URL_ATTRIBUTES = {"scheme", "netloc", "path", "query", "fragment", "username", "password", "hostname", "port"}


def _url_preview(media: _Reader) -> UrlPreviewConfig:
    entries = media.get("url_preview_url_blacklist", list, [])
    key = media.key("url_preview_url_blacklist")
    blocklist = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or not entry:
            raise ConfigError(f"{key}[{i}]", "must be a mapping of URL parts to patterns")
        for attr, pattern in entry.items():
            if attr not in _URL_ATTRIBUTES:
                raise ConfigError(f"{key}[{i}].{attr}", f"not a URL part (one of {', '.join(sorted(_URL_ATTRIBUTES))})")
            if not isinstance(pattern, str):
                raise ConfigError(f"{key}[{i}].{attr}", "must be a string (a glob, or a regex starting with ^)")
            if pattern.startswith("^"):
                try:
                    re.compile(pattern)
                except re.error as e:
                    raise ConfigError(f"{key}[{i}].{attr}", f"invalid regex: {e}") from None
        blocklist.append({str(k): str(v) for k, v in entry.items()})
    spider = media.size("max_spider_size", 10 * 1024 * 1024)
    if spider <= 0:
        raise ConfigError(media.key("max_spider_size"), "must be positive")
    return UrlPreviewConfig(
        enabled=media.get("url_preview_enabled", bool, False),
        # Synapse refuses to start without an explicit list; the default list here blocks
        # loopback, private, link-local and the other internal ranges.
        ip_range_blocklist=media.cidrs("url_preview_ip_range_blacklist", DEFAULT_IP_RANGE_BLOCKLIST),
        ip_range_allowlist=media.cidrs("url_preview_ip_range_whitelist", []),
        url_blocklist=tuple(blocklist),
        max_spider_size=spider,
    )


TOP_LEVEL_KEYS = {
    "server_name",
    "public_baseurl",
    "serve_server_wellknown",
    "well_known_server",
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
    "password_login",
    "access_token_format",
    "oauth",
    "jwt_config",
    "redis",
    "server_notices",
    "password_auth",
    "mfa",
    "email",
    "push",
    "web_push",
    "websocket",
}


def _parse_server_notices(root: _Reader) -> ServerNoticesConfig:
    sec = root.section("server_notices")
    keys = {f.name for f in dataclasses.fields(ServerNoticesConfig)}
    sec.check_known(keys)
    values = {k: sec.get(k, bool if k == "auto_join" else str, getattr(ServerNoticesConfig, k)) for k in keys}
    localpart = values["system_mxid_localpart"]
    if localpart is not None and (not localpart or check_localpart(localpart)):
        raise ConfigError("server_notices.system_mxid_localpart", f"not a valid user name: {localpart!r}")
    return ServerNoticesConfig(**values)


def _parse_auth(root: _Reader, config_dir: str) -> AuthConfig:
    password_login = root.get("password_login", str, "enabled")
    if password_login not in ("enabled", "oauth_only"):
        raise ConfigError("password_login", "must be enabled or oauth_only")
    token_format = root.get("access_token_format", str, "jwt")
    if token_format not in ("jwt", "opaque"):
        raise ConfigError("access_token_format", "must be jwt or opaque")
    oauth = root.section("oauth")
    oauth.check_known({"enabled", "signing_keys_path", "secrets_path"})
    oauth_enabled = oauth.get("enabled", bool, True)
    if password_login == "oauth_only" and not oauth_enabled:
        raise ConfigError("password_login", "oauth_only needs oauth.enabled")
    jwt = root.section("jwt_config")
    jwt.check_known({"enabled", "secret", "algorithm", "subject_claim", "display_name_claim", "issuer", "audiences"})
    jwt_login = JwtLoginConfig(
        enabled=jwt.get("enabled", bool, False),
        secret=jwt.get("secret", str, ""),
        algorithm=jwt.get("algorithm", str, "HS256"),
        subject_claim=jwt.get("subject_claim", str, "sub"),
        display_name_claim=jwt.get("display_name_claim", str, None),
        issuer=jwt.get("issuer", str, None),
        audiences=tuple(str(a) for a in jwt.get("audiences", list, [])) if jwt.data.get("audiences") is not None else None,
    )
    if jwt_login.enabled and not jwt_login.secret:
        raise ConfigError("jwt_config.secret", "is required when jwt_config is enabled")
    redis = root.section("redis")
    redis.check_known({"enabled", "host", "port", "password", "dbid"})
    password_auth = root.get("password_auth", str, "argon2")
    if password_auth not in ("argon2", "opaque"):
        raise ConfigError("password_auth", "must be argon2 or opaque")
    if password_auth == "opaque" and not oauth_enabled:
        raise ConfigError("password_auth", "opaque needs oauth.enabled (OPAQUE runs on the sign-in pages)")
    mfa = root.section("mfa")
    mfa.check_known({"required", "totp_issuer"})
    return AuthConfig(
        password_login=password_login,
        access_token_format=token_format,
        signing_keys_path=oauth.path("signing_keys_path", "access_token_keys.json", config_dir),
        oauth_enabled=oauth_enabled,
        jwt_login=jwt_login,
        redis=RedisConfig(
            enabled=redis.get("enabled", bool, False),
            host=redis.get("host", str, "127.0.0.1"),
            port=redis.port("port", 6379),
            password=redis.get("password", str, None),
            dbid=redis.get("dbid", int, 0),
        ),
        password_auth=password_auth,
        mfa=MfaConfig(required=mfa.get("required", bool, False), totp_issuer=mfa.get("totp_issuer", str, None)),
        secrets_path=oauth.path("secrets_path", "sign_in_secrets.json", config_dir),
    )


def _parse_email(root: _Reader, server_name: str) -> EmailConfig:
    sec = root.section("email")
    sec.check_known(
        {
            "smtp_host", "smtp_port", "smtp_user", "smtp_pass", "force_tls", "require_transport_security",
            "enable_tls", "verify_tls_certificates", "notif_from", "app_name", "validation_token_lifetime",
        }
    )
    lifetime = sec.get("validation_token_lifetime", int, 3600 * 1000)
    if lifetime <= 0:
        raise ConfigError(sec.key("validation_token_lifetime"), "must be a positive number of milliseconds")
    app_name = sec.get("app_name", str, "WSPR")
    host = sec.get("smtp_host", str, None)
    notif_from = sec.get("notif_from", str, f"{app_name} <noreply@{server_name.split(':')[0]}>")
    if host and "@" not in notif_from:
        raise ConfigError(sec.key("notif_from"), "must be an e-mail address (\"Name <address>\" or address)")
    return EmailConfig(
        smtp_host=host or None,
        smtp_port=sec.port("smtp_port", 465 if sec.get("force_tls", bool, False) else 25),
        smtp_user=sec.get("smtp_user", str, None),
        smtp_pass=sec.get("smtp_pass", str, None),
        force_tls=sec.get("force_tls", bool, False),
        require_transport_security=sec.get("require_transport_security", bool, False),
        enable_tls=sec.get("enable_tls", bool, True),
        verify_tls_certificates=sec.get("verify_tls_certificates", bool, True),
        notif_from=notif_from,
        app_name=app_name,
        validation_token_lifetime_ms=lifetime,
    )


def _parse_web_push(root: _Reader, config_dir: str) -> WebPushConfig:
    sec = root.section("web_push")
    sec.check_known({"enabled", "vapid_private_key_path", "subject"})
    subject = sec.get("subject", str, None)
    if subject is not None and not subject.startswith(("mailto:", "https://")):
        raise ConfigError(sec.key("subject"), "must be a mailto: or https: URL")
    return WebPushConfig(
        enabled=sec.get("enabled", bool, True),
        vapid_private_key_path=sec.path("vapid_private_key_path", "web_push_vapid.pem", config_dir),
        subject=subject,
    )


def _parse_listeners(
    root: _Reader, config_dir: str
) -> tuple[ListenerConfig, FederationListenerConfig, MetricsListenerConfig]:
    listeners = root.section("listeners")
    listeners.check_known({"client", "federation", "metrics"})
    client = listeners.section("client")
    client.check_known({"bind_address", "port", "resources", *_FORWARDED_KEYS})
    client_listener = ListenerConfig(
        bind_address=client.get("bind_address", str, "127.0.0.1"),
        port=client.port("port", 8008),
        resources=_resources(client, ("client",)),
        **_forwarded(client),
    )
    fed = listeners.section("federation")
    fed.check_known({"enabled", "bind_address", "port", "tls_certificate", "tls_private_key", "resources", *_FORWARDED_KEYS})
    federation_listener = FederationListenerConfig(
        enabled=fed.get("enabled", bool, True),
        bind_address=fed.get("bind_address", str, "0.0.0.0"),
        port=fed.port("port", 8448),
        tls_certificate=fed.path("tls_certificate", "tls.crt", config_dir),
        tls_private_key=fed.path("tls_private_key", "tls.key", config_dir),
        resources=_resources(fed, ("federation",)),
        **_forwarded(fed),
    )
    if federation_listener.enabled:
        for key in ("tls_certificate", "tls_private_key"):
            if not os.path.exists(getattr(federation_listener, key)):
                raise ConfigError(fed.key(key), f"file not found: {getattr(federation_listener, key)}")
    met = listeners.section("metrics")
    met.check_known({"enabled", "bind_address", "port", "resources", *_FORWARDED_KEYS})
    metrics_listener = MetricsListenerConfig(
        enabled=met.get("enabled", bool, False),
        bind_address=met.get("bind_address", str, "127.0.0.1"),
        port=met.port("port", 9008),
        resources=_resources(met, ("metrics",)),
        **_forwarded(met),
    )

    return client_listener, federation_listener, metrics_listener


def _parse_database(root: _Reader, config_dir: str) -> tuple[str, str]:
    """The database URL (a relative SQLite path made absolute) and SQLite's synchronous mode."""
    db = root.section("database")
    db.check_known({"url", "synchronous"})
    database_url = db.get("url", str, "sqlite:///wspr.db")
    database_synchronous = db.get("synchronous", str, "normal").lower()
    if database_synchronous not in ("normal", "full"):
        raise ConfigError("database.synchronous", "must be normal or full")
    if database_url.startswith("sqlite:///"):
        path = database_url[len("sqlite:///"):]
        if path != ":memory:" and not os.path.isabs(path):
            database_url = "sqlite:///" + os.path.normpath(os.path.join(config_dir, path))
    elif not database_url.startswith(("postgresql://", "postgres://")):
        raise ConfigError("database.url", "must start with sqlite:/// or postgresql://")
    return database_url, database_synchronous


def _parse_media(root: _Reader, config_dir: str) -> MediaConfig:
    media = root.section("media")
    media.check_known(
        {
            "store_path",
            "max_upload_size",
            "max_image_pixels",
            "thumbnail_sizes",
            "enable_authenticated_media",
            "remote_fetch_timeout",
            *_URL_PREVIEW_KEYS,
        }
    )
    fetch_timeout = media.get("remote_fetch_timeout", float, 60.0)
    if not 0 < fetch_timeout <= 3600:
        raise ConfigError(media.key("remote_fetch_timeout"), "must be a number of seconds from 0 to 3600")
    return MediaConfig(
        store_path=media.path("store_path", "media", config_dir),
        max_upload_size=media.size("max_upload_size", 50 * 1024 * 1024),
        max_image_pixels=media.size("max_image_pixels", 32 * 1024 * 1024),
        thumbnail_sizes=_thumbnail_sizes(media),
        enable_authenticated_media=media.get("enable_authenticated_media", bool, True),
        remote_fetch_timeout_s=fetch_timeout,
        url_preview=_url_preview(media),
    )


def _parse_web_client(root: _Reader, config_dir: str) -> WebClientConfig:
    web = root.section("web_client")
    web.check_known({"enabled", "path"})
    default_web = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "frontend", "dist")
    return WebClientConfig(enabled=web.get("enabled", bool, True), path=web.path("path", default_web, config_dir))


def _parse_rtc_full_access(root: _Reader, server_name: str) -> list[str]:
    rtc = root.section("rtc_token_service")
    rtc.check_known({"full_access_homeservers"})
    full_access = rtc.get("full_access_homeservers", list, [server_name])
    if not all(isinstance(s, str) for s in full_access):
        raise ConfigError("rtc_token_service.full_access_homeservers", "must be a list of server names (or \"*\")")
    return full_access


def parse_config(data: Any, config_dir: str) -> HomeServerConfig:
    if not isinstance(data, dict):
        raise ConfigError("(top level)", "the config file must be a YAML mapping")
    root = _Reader(data)
    root.check_known(TOP_LEVEL_KEYS)

    server_name = check_server_name(root.get("server_name", str, None))

    client_listener, federation_listener, metrics_listener = _parse_listeners(root, config_dir)
    database_url, database_synchronous = _parse_database(root, config_dir)
    media_config = _parse_media(root, config_dir)
    web_client = _parse_web_client(root, config_dir)

    # The version of rooms created without one (Synapse's key and default).
    default_room_version = str(root.get("default_room_version", (str, int), DEFAULT_ROOM_VERSION))
    if default_room_version not in KNOWN_ROOM_VERSIONS:
        raise ConfigError("default_room_version", f"must be a room version from 1 to {len(KNOWN_ROOM_VERSIONS)}")

    log_level = root.get("log_level", str, "INFO").upper()
    if log_level not in _LOG_LEVELS:
        raise ConfigError("log_level", f"must be one of {', '.join(sorted(_LOG_LEVELS))}")

    secret = root.get("registration_shared_secret", str, None)
    lifetime = root.get("access_token_lifetime", int, None)
    if lifetime is not None and lifetime <= 0:
        raise ConfigError("access_token_lifetime", "must be a positive number of milliseconds")

    public_baseurl = check_public_baseurl(
        root.get("public_baseurl", str, default_public_baseurl(server_name, client_listener.port))
    )
    well_known_server = _well_known_server(root, server_name)

    from media_sfu.config import SFUConfig

    try:
        sfu = SFUConfig.from_dict(root.get("sfu", dict, {}))
    except ValueError as e:
        key, _, message = str(e).partition(": ")
        raise ConfigError(key, message or str(e)) from None
    full_access = _parse_rtc_full_access(root, server_name)

    return HomeServerConfig(
        config_dir=config_dir,
        server_name=server_name,
        public_baseurl=public_baseurl,
        well_known_server=well_known_server,
        client_listener=client_listener,
        federation_listener=federation_listener,
        metrics_listener=metrics_listener,
        database_url=database_url,
        database_synchronous=database_synchronous,
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
        auth=_parse_auth(root, config_dir),
        server_notices=_parse_server_notices(root),
        email=_parse_email(root, server_name),
        push=_parse_push(root),
        web_push=_parse_web_push(root, config_dir),
        websocket=_parse_websocket(root),
        raw=data,
    )


def _parse_websocket(root: _Reader) -> WebSocketConfig:
    try:
        return WebSocketConfig.from_dict(root.get("websocket", dict, {}))
    except ValueError as e:
        key, _, message = str(e).partition(": ")
        raise ConfigError(key, message or str(e)) from None


def _well_known_server(root: _Reader, server_name: str) -> str | None:
    """The ``m.server`` of /.well-known/matrix/server: ``well_known_server`` as given, or
    with ``serve_server_wellknown`` the server name with port 443 unless it has one (as
    Synapse derives it: whoever asks https://<server_name>/ reached us on 443)."""
    explicit = root.get("well_known_server", str, None)
    if explicit is not None:
        if not _SERVER_NAME_RE.match(explicit):
            raise ConfigError("well_known_server", f"not a server name (host or host:port): {explicit!r}")
        return explicit
    if not root.get("serve_server_wellknown", bool, False):
        return None
    m = _SERVER_NAME_RE.match(server_name)
    assert m is not None  # checked above
    return server_name if m.group(2) else f"{server_name}:443"


def _parse_push(root: _Reader) -> PushConfig:
    try:
        return PushConfig.from_dict(root.get("push", dict, {}))
    except ValueError as e:
        key, _, message = str(e).partition(": ")
        raise ConfigError(key, message or str(e)) from None


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

