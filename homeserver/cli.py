"""The ``wspr`` command: init, run, register."""

from __future__ import annotations

import argparse
import datetime
import ipaddress
import logging
import os
import secrets
import sys
from homeserver.config import ConfigError, load_config

CONFIG_TEMPLATE = """\
# WSPR homeserver configuration. Every key is optional unless marked required.

# Required. The name users and rooms on this server carry (@alice:NAME). It cannot be
# changed later. For loopback federation tests, use 127.0.0.1:<federation port>.
server_name: "{server_name}"

# The URL clients use to reach the client API (advertised in /.well-known/matrix/client).
public_baseurl: "{public_baseurl}"

listeners:
  # The Matrix client-server API (plain HTTP: put a TLS proxy in front in production).
  client:
    bind_address: "127.0.0.1"
    port: {http_port}
  # The server-server (federation) API, always over TLS.
  federation:
    enabled: true
    bind_address: "0.0.0.0"
    port: {federation_port}
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

# This server's ed25519 signing key (events and federation requests are signed with it).
signing_key_path: "signing.key"

# Uploaded files (avatars, attachments).
media:
  store_path: "media"
  max_upload_size: "50M"

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

# Rate limits per action (per_second, burst). `enabled: false` turns them all off.
rate_limits:
  enabled: true
  message: {{per_second: 10, burst: 50}}
  login: {{per_second: 0.5, burst: 10}}
  registration: {{per_second: 0.5, burst: 10}}
  joins: {{per_second: 2, burst: 20}}
  invites: {{per_second: 1, burst: 20}}
  media_upload: {{per_second: 2, burst: 20}}

federation:
  enabled: true
  # Verify other servers' TLS certificates (turn off only for loopback tests).
  verify_certificates: true
  # ca_file: /path/to/extra-ca.pem
  # Outbound requests never go to these ranges (private and loopback by default).
  # ip_range_blocklist: ["127.0.0.0/8", "10.0.0.0/8", ...]
  # Federate only with these servers (default: everyone).
  # domain_allowlist: ["partner.example.org"]
  min_retry_interval: 5
  max_retry_interval: 3600

# Room version for new rooms: 10, 11 or 12.
default_room_version: "11"

# Access token lifetime in milliseconds when clients ask for refresh tokens.
# access_token_lifetime: 300000

log_level: "INFO"

# The bundled SFU for group calls: LiveKit's client protocol, so Element Call and the
# LiveKit SDKs join unmodified. `wspr run` starts it as its own process.
sfu:
  enabled: true
  # Where the SFU's signalling WebSocket listens, and the ws(s):// URL clients are given
  # (put it behind your TLS proxy in production, e.g. wss://example.org/livekit/sfu).
  bind_address: "127.0.0.1"
  port: 7880
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
"""


def _write_signing_key(path: str) -> None:
    from homeserver.protocol.signing import generate_signing_key, write_signing_keys

    key = generate_signing_key("a_" + secrets.token_hex(2))
    with open(path, "w", encoding="utf-8") as f:
        f.write(write_signing_keys([key]))
    os.chmod(path, 0o600)


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
    now = datetime.datetime.now(datetime.timezone.utc)
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
    with open(key_path, "wb") as f:
        f.write(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
    os.chmod(key_path, 0o600)


def cmd_init(args: argparse.Namespace) -> int:
    directory = os.path.abspath(args.dir)
    os.makedirs(directory, exist_ok=True)
    config_path = os.path.join(directory, "wspr.yaml")
    if os.path.exists(config_path) and not args.force:
        print(f"{config_path} already exists (use --force to overwrite)", file=sys.stderr)
        return 1
    database_url = args.database or "sqlite:///wspr.db"
    host = "localhost"
    with open(config_path, "w", encoding="utf-8") as f:
        f.write(
            CONFIG_TEMPLATE.format(
                server_name=args.server_name,
                public_baseurl=f"http://{host}:{args.http_port}/",
                http_port=args.http_port,
                federation_port=args.federation_port,
                database_url=database_url,
                shared_secret=secrets.token_urlsafe(32),
                sfu_secret=secrets.token_urlsafe(32),
            )
        )
    os.chmod(config_path, 0o600)
    _write_signing_key(os.path.join(directory, "signing.key"))
    _write_tls_cert(os.path.join(directory, "tls.crt"), os.path.join(directory, "tls.key"), args.server_name)
    os.makedirs(os.path.join(directory, "media"), exist_ok=True)
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

    async def start() -> None:
        try:
            await hs.start_services()
            hs.listen()
            await hs.start_extras()
        except Exception as e:
            logging.getLogger("wspr").error("start-up failed: %s", e)
            reactor.stop()  # type: ignore[attr-defined]

    reactor.callWhenRunning(lambda: defer.ensureDeferred(start()))  # type: ignore[attr-defined]
    reactor.addSystemEventTrigger("before", "shutdown", lambda: defer.ensureDeferred(hs.stop_extras()))  # type: ignore[attr-defined]
    reactor.run()  # type: ignore[attr-defined]
    return 0


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
    db = Database(config.database_url)
    prepare_database(db)
    password_hash = hash_password_sync(args.password)

    created = db.run_sync(create_user_txn, user_id, password_hash, bool(args.admin), False, localpart)
    if not created:
        print(f"{user_id} already exists", file=sys.stderr)
        return 1
    print(f"created {user_id}" + (" (admin)" if args.admin else ""))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="wspr", description="WSPR Matrix homeserver")
    sub = parser.add_subparsers(dest="command", required=True)
    p_init = sub.add_parser("init", help="create a configuration, signing key and TLS certificate")
    p_init.add_argument("dir")
    p_init.add_argument("--server-name", required=True)
    p_init.add_argument("--http-port", type=int, default=8008)
    p_init.add_argument("--federation-port", type=int, default=8448)
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
    args = parser.parse_args(argv)
    return int(args.fn(args))


if __name__ == "__main__":
    sys.exit(main())
