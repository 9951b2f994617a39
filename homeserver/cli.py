"""The ``wspr`` command: init, run, register."""

from __future__ import annotations

import argparse
import datetime
import ipaddress
import logging
import os
import secrets
import sys

from homeserver.config import ConfigError, check_public_baseurl, check_server_name, default_public_baseurl, load_config

CONFIG_TEMPLATE = """\
# WSPR homeserver configuration. Every key is optional unless marked required.

# Required. The name users and rooms on this server carry (@alice:NAME). It cannot be
# changed later. For loopback federation tests, use 127.0.0.1:<federation port>.
server_name: "{server_name}"

# The URL clients use to reach the client API (the login response's well_known and
# /.well-known/matrix/client send them there). Behind a TLS proxy: https://<your domain>/.
public_baseurl: "{public_baseurl}"

# Federation delegation: serve /.well-known/matrix/server on the client listener, so
# other servers reach this one at <server_name>:443 (through your TLS proxy) instead of
# port 8448. well_known_server names another host:port explicitly.
serve_server_wellknown: false
# well_known_server: "matrix.example.org:443"

# Each listener serves the resources it names (Synapse's names): client (the client API,
# /.well-known, the admin API, sign-in pages, the web client, /_matrix/media), federation
# (the server-server API and keys), media, metrics, static (the web client alone).
# Behind a TLS-terminating proxy on 443, one plain listener can carry client and
# federation: resources: [{{names: [client, federation]}}] and x_forwarded: true.
listeners:
  # The Matrix client-server API (plain HTTP: put a TLS proxy in front in production).
  client:
    bind_address: "127.0.0.1"
    port: {http_port}
    resources: [{{names: [client]}}]
    # Behind a reverse proxy, take the client's address (for rate limits and the devices'
    # last_seen_ip) from X-Forwarded-For, only when the connection comes from one of
    # trusted_proxies (default when on: loopback, a proxy on this machine).
    x_forwarded: false
    # trusted_proxies: ["127.0.0.0/8", "::1/128"]
  # The server-server (federation) API over TLS (enabled: false when the client
  # listener serves federation behind your proxy).
  federation:
    enabled: true
    bind_address: "0.0.0.0"
    port: {federation_port}
    resources: [{{names: [federation]}}]
    tls_certificate: "tls.crt"
    tls_private_key: "tls.key"
  # Prometheus metrics at /metrics, on their own port.
  metrics:
    enabled: false
    bind_address: "127.0.0.1"
    port: 9008

# Where data lives: sqlite:///path (relative to this file) or postgresql://user@host/db
database:
  url: "{database_url}"
  # SQLite only. normal: a commit is acknowledged once it is in the write-ahead log; a
  # crash of the server loses nothing, a power cut or OS crash may lose the last few
  # acknowledged commits (the database stays consistent). full: every commit reaches
  # the disk before it is acknowledged (durable against power loss; slower writes).
  synchronous: normal

# This server's ed25519 signing key (events and federation requests are signed with it).
signing_key_path: "signing.key"

# Uploaded files (avatars, attachments).
media:
  store_path: "media"
  max_upload_size: "50M"
  # Media uploaded while this is on is served only on the authenticated endpoints
  # (/_matrix/client/v1/media/...); the legacy /_matrix/media/v3 download and thumbnail
  # endpoints answer 404 for it. Media uploaded before keeps working there.
  enable_authenticated_media: true
  # Thumbnails are made only in these sizes; a request gets the nearest one.
  # thumbnail_sizes:
  #   - {{width: 32, height: 32, method: crop}}
  #   - {{width: 96, height: 96, method: crop}}
  #   - {{width: 320, height: 240, method: scale}}
  #   - {{width: 640, height: 480, method: scale}}
  #   - {{width: 800, height: 600, method: scale}}
  # Images with more pixels than this are not thumbnailed (decoding one takes up to
  # 4 bytes a pixel).
  max_image_pixels: "32M"
  # How long fetching media from another server (or a page to preview) may take, in
  # seconds: for the answer to begin, and again for its body. Media of other servers is
  # refused past max_upload_size.
  remote_fetch_timeout: 60
  # URL previews (/preview_url: the title, description and image of a link), as
  # Synapse's keys. A preview fetches what a user names: it never connects to an address
  # of url_preview_ip_range_blacklist (loopback, private, link-local... by default),
  # unless url_preview_ip_range_whitelist allows it; redirects are checked the same way.
  url_preview_enabled: false
  # url_preview_ip_range_blacklist: ["127.0.0.0/8", "10.0.0.0/8", ...]   (the default list)
  # url_preview_ip_range_whitelist: []
  # Refuse URLs by their parts (scheme, netloc, path, query...): a glob, or a regex
  # when it starts with ^; a URL matching every part of one entry is refused.
  # url_preview_url_blacklist:
  #   - {{netloc: "*.internal.example.org"}}
  #   - {{scheme: "http"}}
  # The most a page or image to preview may weigh.
  max_spider_size: "10M"

# The bundled web client (the PWA), served at / on the client listener.
web_client:
  enabled: true
  # path: /absolute/path/to/frontend/dist   (defaults to the one beside the code)

# Open registration (with the m.login.dummy stage) when true.
enable_registration: false
# Require a registration token (m.login.registration_token) to register.
registration_requires_token: false
# Allow guest accounts (register?kind=guest).
allow_guest_access: false
# Enables /_synapse/admin/v1/register for provisioning scripts. Keep it secret.
registration_shared_secret: "{shared_secret}"

# Server notices (POST /_synapse/admin/v1/send_server_notice): messages from this account
# to a user, in a room of their own where they cannot speak. Off without a localpart.
# server_notices:
#   system_mxid_localpart: notices
#   system_mxid_display_name: "Server Notices"
#   room_name: "Server Notices"
#   auto_join: false

# Rate limits per action (per_second, burst). `enabled: false` turns them all off.
rate_limits:
  enabled: true
  message: {{per_second: 10, burst: 50}}
  # Every /login request, per client address.
  login: {{per_second: 0.5, burst: 10}}
  # Successful logins, per account.
  login_account: {{per_second: 0.05, burst: 10}}
  # Wrong passwords (at /login and when a password is asked again, e.g. to delete a
  # device), per account and client address: guesses from one address never lock the
  # owner out from another.
  login_failed_attempts: {{per_second: 0.17, burst: 3}}
  registration: {{per_second: 0.5, burst: 10}}
  joins: {{per_second: 2, burst: 20}}
  invites: {{per_second: 1, burst: 20}}
  media_upload: {{per_second: 2, burst: 20}}
  # Reports of rooms and users (POST .../report), per reporter.
  reports: {{per_second: 1, burst: 5}}

federation:
  enabled: true
  # Verify other servers' TLS certificates (turn off only for loopback tests).
  verify_certificates: true
  # ca_file: /path/to/extra-ca.pem
  # Outbound requests never go to these ranges (default: Synapse's list of private,
  # loopback, link-local, documentation and multicast ranges, plus NAT64). 0.0.0.0 and ::
  # are always blocked; ip_range_allowlist re-opens ranges (e.g. ["127.0.0.0/8"]).
  # ip_range_blocklist: ["127.0.0.0/8", "10.0.0.0/8", ...]
  # Federate only with these servers (default: everyone).
  # domain_allowlist: ["partner.example.org"]
  min_retry_interval: 5
  max_retry_interval: 3600

# Room version of rooms created without one (createRoom's room_version): any of 1 to 12,
# all stable (/capabilities lists them). Synapse's default, 11, suits most servers;
# 12 gives room creators unlimited power and room ids without a server name.
default_room_version: "11"

# Access token lifetime in milliseconds when clients ask for refresh tokens, and of the
# access tokens of the OAuth 2.0 API (default 5 minutes).
# access_token_lifetime: 300000

# Sign-in. WSPR serves the Matrix OAuth 2.0 API itself (discovery at
# /_matrix/client/v1/auth_metadata), with its sign-in, sign-up and account pages under
# /_wspr/. "enabled": the legacy password login (POST /login) works too, for older clients;
# "oauth_only": the server answers as one that requires the OAuth 2.0 API (as Synapse with
# MAS: /login, /register, /refresh, /logout, password change and device deletion are gone
# from the client API; accounts are managed on the account pages).
password_login: enabled
# Access tokens of the legacy /login and /register: "jwt" (signed, checked without a
# database read; ended sessions are refused at once through a revocation list) or
# "opaque" (random, looked up in the database on every request). OAuth tokens are JWTs.
access_token_format: jwt
oauth:
  enabled: true
  # The access-token signing keys (a JWKS file, created at first start). `wspr
  # rotate-token-key -c wspr.yaml` adds a new one; old keys keep verifying, so nobody is
  # signed out.
  signing_keys_path: "access_token_keys.json"
  # The OPAQUE server setup and the recovery-code key (created at first start). Back it
  # up with the database: without it OPAQUE passwords and recovery codes stop working.
  secrets_path: "sign_in_secrets.json"

# How the sign-in pages check passwords: "argon2" (the browser sends the password, the
# server keeps an argon2id hash) or "opaque" (RFC 9807: the browser runs OPAQUE and the
# server keeps a registration record, never the password or a hash of it; accounts move
# over at their next sign-in). The legacy POST /login still receives passwords unless
# password_login is oauth_only.
password_auth: argon2

# Second factors on the sign-in pages (authenticator apps, passkeys, recovery codes).
# required: true takes every user without one through enrolment at their next sign-in.
mfa:
  required: false
  # totp_issuer: "Example Chat"

# Outgoing e-mail, for verifying addresses and resetting forgotten passwords (Synapse's
# keys). Without smtp_host, e-mail is off.
email:
  # smtp_host: "smtp.example.org"
  # smtp_port: 587
  # smtp_user: "wspr"
  # smtp_pass: "..."
  # force_tls: false                  # implicit TLS (port 465)
  # require_transport_security: true  # refuse to send without STARTTLS
  # notif_from: "Example Chat <noreply@example.org>"
  # app_name: "Example Chat"
  # validation_token_lifetime: 3600000  # how long a link works (ms)

# org.matrix.login.jwt logins with tokens from your own identity provider, as Synapse's
# jwt_config. secret: the HMAC secret, or the PEM public key for RS/ES/EdDSA algorithms.
jwt_config:
  enabled: false
  # secret: "..."
  # algorithm: "HS256"
  # subject_claim: "sub"
  # display_name_claim: "name"
  # issuer: "https://idp.example.org"
  # audiences: ["wspr"]

# Several WSPR processes on one database: Redis carries ended sessions to all of them at
# once (one process needs nothing).
redis:
  enabled: false
  host: "127.0.0.1"
  port: 6379

# The WebSocket stream (docs/websocket.md): what /sync or sliding sync would return, as
# it happens, on one socket per client at /_matrix/client/unstable/org.wspr.websocket
# (advertised in /versions as org.wspr.websocket). Times in milliseconds.
websocket:
  enabled: true
  # An idle frame and a ping after this long without traffic; a client that answers
  # no ping for ping_timeout_ms (at least 2000) is dropped.
  heartbeat_ms: 30000
  ping_timeout_ms: 30000
  # Frames sent and not yet acknowledged: past either bound the stream holds (the next
  # frame carries everything meanwhile); a client held up for slow_client_timeout_ms
  # is dropped with close code 4008 and resumes from its last token.
  max_unacked_frames: 32
  max_unacked_bytes: 1048576
  slow_client_timeout_ms: 30000
  # A socket opened without a token must send its auth frame within this time.
  auth_timeout_ms: 10000
  # Sockets open at once per device; one more closes the oldest (4029).
  max_per_device: 10

# HTTP pushers: notifications sent to push gateways (Sygnal and the like) for mobile
# clients, with Synapse's keys. A gateway that fails is retried after min_retry_interval
# seconds, doubling up to max_retry_interval; a notification that has failed for
# give_up_after seconds is dropped. Gateway addresses obey federation.ip_range_blocklist.
push:
  include_content: true             # false: no event content reaches the gateways
  group_unread_count_by_room: true  # the badge counts rooms, not messages
  # min_retry_interval: 1
  # max_retry_interval: 3600
  # give_up_after: 86400

log_level: "INFO"

# The bundled SFU for group calls: LiveKit's client protocol, so Element Call and the
# LiveKit SDKs join unmodified. `wspr run` starts it as its own process.
sfu:
  enabled: true
  # Where the SFU's signalling WebSocket listens, and the ws(s):// URL clients are given
  # (put it behind your TLS proxy in production, e.g. wss://example.org/livekit/sfu).
  bind_address: "127.0.0.1"
  port: {sfu_port}
  # public_url: "wss://example.org/livekit/sfu"
  # HS256 key pair that signs the call access tokens (LiveKit JWTs).
  api_key: "wspr"
  api_secret: "{sfu_secret}"
  # Media (ICE/UDP): the address announced to clients and the UDP port range, for a
  # server behind NAT or in a container.
  rtc:
    # public_ip: "203.0.113.10"
    udp_port_min: 0
    udp_port_max: 0
  # STUN/TURN servers handed to clients (e.g. coturn) for strict NATs.
  ice_servers: []
  #  - urls: ["turn:turn.example.org:3478?transport=udp"]
  #    username: "user"
  #    credential: "secret"

# The call token service (lk-jwt-service compatible) at /_wspr/livekit/jwt: users of the
# homeservers listed here may start calls; everyone else may only join running ones.
# "*" means any homeserver.
rtc_token_service:
  full_access_homeservers: ["{server_name}"]

# Web Push: WSPR's own push gateway at /_wspr/push/v1/notify, which the web client's
# pushers point at to get notifications while the app is closed. The VAPID key
# identifies this server to browsers' push services (created here and at first start;
# losing it ends every browser's subscription).
web_push:
  enabled: true
  vapid_private_key_path: "web_push_vapid.pem"
  # subject: "mailto:admin@example.org"   # default: public_baseurl
"""


def _write_private(path: str, data: bytes) -> None:
    """Writes a file only its owner can read, from the moment it exists (secrets: keys,
    the config with its shared secrets)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with open(fd, "wb") as f:
        os.fchmod(f.fileno(), 0o600)  # it may have existed (--force) with another mode
        f.write(data)


def _write_signing_key(path: str) -> None:
    from homeserver.protocol.signing import generate_signing_key, write_signing_keys

    key = generate_signing_key("a_" + secrets.token_hex(2))
    _write_private(path, write_signing_keys([key]).encode("utf-8"))


def _write_tls_cert(cert_path: str, key_path: str, server_name: str) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    host = server_name.rsplit(":", 1)[0] if not server_name.startswith("[") else server_name[1:].split("]")[0]
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    alt: list[x509.GeneralName] = []
    try:
        alt.append(x509.IPAddress(ipaddress.ip_address(host)))
    except ValueError:
        alt.append(x509.DNSName(host))
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .sign(key, hashes.SHA256())
    )
    with open(cert_path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    _write_private(
        key_path,
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
    )


def cmd_init(args: argparse.Namespace) -> int:
    try:
        # The checks `wspr run` makes, so init never writes a file that cannot start.
        check_server_name(args.server_name)
        public_baseurl = check_public_baseurl(args.public_baseurl or default_public_baseurl(args.server_name, args.http_port))
    except ConfigError as e:
        print(str(e), file=sys.stderr)
        return 2
    directory = os.path.abspath(args.dir)
    # The data directory holds the database, keys and media: private to the server's user.
    os.makedirs(directory, mode=0o700, exist_ok=True)
    config_path = os.path.join(directory, "wspr.yaml")
    if os.path.exists(config_path) and not args.force:
        print(f"{config_path} already exists (use --force to overwrite)", file=sys.stderr)
        return 1
    database_url = args.database or "sqlite:///wspr.db"
    config = CONFIG_TEMPLATE.format(
        server_name=args.server_name,
        public_baseurl=public_baseurl,
        http_port=args.http_port,
        federation_port=args.federation_port,
        sfu_port=args.sfu_port,
        database_url=database_url,
        shared_secret=secrets.token_urlsafe(32),
        sfu_secret=secrets.token_urlsafe(32),
    )
    _write_private(config_path, config.encode("utf-8"))
    _write_signing_key(os.path.join(directory, "signing.key"))
    from homeserver.push_gateway.vapid import load_or_create_key

    load_or_create_key(os.path.join(directory, "web_push_vapid.pem"))
    _write_tls_cert(os.path.join(directory, "tls.crt"), os.path.join(directory, "tls.key"), args.server_name)
    os.makedirs(os.path.join(directory, "media"), mode=0o700, exist_ok=True)
    print(f"wrote {config_path}")
    return 0


def _setup_logging(level: str) -> None:
    logging.basicConfig(level=getattr(logging, level), format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def cmd_run(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config)
        from homeserver.app import HomeServer

        _setup_logging(config.log_level)
        hs = HomeServer(config)
        hs.setup()
    except ConfigError as e:
        print(str(e), file=sys.stderr)
        return 2
    except Exception as e:  # e.g. the database is unreachable: one line, no traceback
        print(f"cannot start: {e}", file=sys.stderr)
        return 2
    from twisted.internet import defer, reactor

    failed: list[int] = []
    stopping: list[bool] = []

    async def start() -> None:
        try:
            await hs.start_services()
            hs.listen()
            await hs.start_extras()
        except Exception:
            if stopping:
                return  # SIGTERM during start-up: what was starting was stopped, not failed
            raise

    async def start_or_exit() -> None:
        try:
            await start()
        except ConfigError as e:
            # A port that cannot be opened (listeners.*, sfu.port): one line, as a bad config.
            print(str(e), file=sys.stderr)
            failed.append(2)
            reactor.stop()
        except Exception as e:
            print(f"cannot start: {e}", file=sys.stderr)
            failed.append(1)
            reactor.stop()

    def shutdown() -> defer.Deferred[None]:
        stopping.append(True)
        return defer.ensureDeferred(hs.stop_extras())

    reactor.callWhenRunning(lambda: defer.ensureDeferred(start_or_exit()))
    reactor.addSystemEventTrigger("before", "shutdown", shutdown)
    reactor.run()
    return failed[0] if failed else 0


def cmd_register(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config)
    except ConfigError as e:
        print(str(e), file=sys.stderr)
        return 2
    from homeserver.handlers.auth import hash_password_sync
    from homeserver.storage import Database, prepare_database
    from homeserver.storage.users import create_user_txn
    from homeserver.util.ids import check_localpart

    localpart = args.username.lower()
    if localpart.startswith("@"):
        localpart = localpart[1:].split(":", 1)[0]
    reason = check_localpart(localpart)
    if reason:
        print(f"invalid username: {reason}", file=sys.stderr)
        return 1
    user_id = f"@{localpart}:{config.server_name}"
    db = Database(config.database_url, synchronous=config.database_synchronous)
    prepare_database(db)
    password_hash = hash_password_sync(args.password)

    created = db.run_sync(create_user_txn, user_id, password_hash, bool(args.admin), False, localpart)
    if not created:
        print(f"{user_id} already exists", file=sys.stderr)
        return 1
    print(f"created {user_id}" + (" (admin)" if args.admin else ""))
    return 0


def cmd_rotate_token_key(args: argparse.Namespace) -> int:
    """Adds a new access-token signing key and makes it the one that signs; the old keys
    keep verifying the tokens they signed, so nobody is signed out. Running servers pick
    the new key up when they first meet a token signed by it; restart them to make them
    sign with it too."""
    try:
        config = load_config(args.config)
    except ConfigError as e:
        print(str(e), file=sys.stderr)
        return 2
    from homeserver.oauth.tokens import rotate_signing_key

    kid = rotate_signing_key(config.auth.signing_keys_path)
    print(f"new signing key {kid} in {config.auth.signing_keys_path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="wspr", description="WSPR Matrix homeserver")
    sub = parser.add_subparsers(dest="command", required=True)
    p_init = sub.add_parser("init", help="create a configuration, signing key and TLS certificate")
    p_init.add_argument("dir")
    p_init.add_argument("--server-name", required=True)
    p_init.add_argument("--http-port", type=int, default=8008)
    p_init.add_argument("--federation-port", type=int, default=8448)
    p_init.add_argument(
        "--public-baseurl",
        default=None,
        help="the URL clients reach the client API at (default: https://<server name host>/, "
        "or http://localhost:<http port>/ for a loopback server name)",
    )
    p_init.add_argument("--sfu-port", type=int, default=7880, help="the SFU's signalling port (default 7880)")
    p_init.add_argument("--database", default=None, help="sqlite:///path or postgresql://user@host/db")
    p_init.add_argument("--force", action="store_true")
    p_init.set_defaults(fn=cmd_init)
    p_run = sub.add_parser("run", help="run the server in the foreground")
    p_run.add_argument("-c", "--config", required=True)
    p_run.set_defaults(fn=cmd_run)
    p_reg = sub.add_parser("register", help="create a user")
    p_reg.add_argument("-c", "--config", required=True)
    p_reg.add_argument("username")
    p_reg.add_argument("--password", required=True)
    p_reg.add_argument("--admin", action="store_true")
    p_reg.set_defaults(fn=cmd_register)
    p_rot = sub.add_parser("rotate-token-key", help="add a new access-token signing key (nobody is signed out)")
    p_rot.add_argument("-c", "--config", required=True)
    p_rot.set_defaults(fn=cmd_rotate_token_key)
    args = parser.parse_args(argv)
    return int(args.fn(args))


if __name__ == "__main__":
    sys.exit(main())
