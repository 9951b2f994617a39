"""``python -m media_sfu --config wspr.yaml``: run the SFU until SIGTERM/SIGINT.

``wspr run`` spawns this as a child process so that the SFU gets its own core (aiortc is
asyncio-only and the GIL would otherwise make the homeserver and the SFU share one).
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import gc
import json
import logging
import os
import signal
import sys

from .config import SFUConfig
from .server import SFUServer


def _listen_error(config: SFUConfig, error: OSError) -> tuple[str, str]:
    """(config key, message) for a signalling port that cannot be opened, worded as the
    homeserver's listeners (``homeserver/http/listeners.py``)."""
    if error.errno == errno.EADDRINUSE:
        return "sfu.port", f"port {config.port} is already in use"
    if error.errno == errno.EACCES:
        return "sfu.port", f"no permission to listen on port {config.port}"
    if error.errno == errno.EADDRNOTAVAIL:
        return "sfu.bind_address", f"{config.bind_address} is not an address of this machine"
    return "sfu.port", f"cannot listen on {config.bind_address}:{config.port}: {error.strerror or error}"


def _tell_parent(ready_fd: int | None, answer: dict[str, str]) -> None:
    """One JSON line on the pipe ``wspr run`` waits on: {"ready": ...} or {"key", "error"}."""
    if ready_fd is None:
        return
    try:
        os.write(ready_fd, json.dumps(answer).encode() + b"\n")
        os.close(ready_fd)
    except OSError:
        pass  # the parent is gone


async def _run(config: SFUConfig, ready_fd: int | None = None) -> int:
    server = SFUServer(config)
    try:
        await server.start()
    except OSError as e:
        key, message = _listen_error(config, e)
        if ready_fd is None:
            print(f"config error: {key}: {message}", file=sys.stderr)
        _tell_parent(ready_fd, {"key": key, "error": message})
        return 2
    _tell_parent(ready_fd, {"ready": server.url})
    # Forwarding allocates short-lived, acyclic objects per packet: refcounting frees them,
    # so the cyclic GC only adds pauses (latency tail). Collect less often, and keep the
    # startup heap (aiortc, protobuf, ...) out of full collections.
    gc.collect()
    gc.freeze()
    gc.set_threshold(20000, 20, 20)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    # tell clients we are going (SERVER_SHUTDOWN) and close PCs before exiting
    await server.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m media_sfu", description="WSPR selective forwarding unit")
    ap.add_argument("--config", required=True, help="path to wspr.yaml (its sfu: section is read)")
    ap.add_argument("--ready-fd", type=int, default=None, help="(wspr run) a pipe told when listening, or why not")
    args = ap.parse_args(argv)
    try:
        config = SFUConfig.from_yaml_file(args.config)
    except (OSError, ValueError) as e:
        print(f"media_sfu: bad configuration: {e}", file=sys.stderr)
        _tell_parent(args.ready_fd, {"key": "sfu", "error": f"bad configuration: {e}"})
        return 2
    logging.basicConfig(level=config.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not config.enabled:
        logging.getLogger("media_sfu").info("sfu.enabled is false; exiting")
        _tell_parent(args.ready_fd, {"ready": ""})
        return 0
    # autobahn logs every refused handshake (e.g. the /rtc/v1 404 that makes clients fall
    # back to /rtc) as a warning; that is normal operation here
    logging.getLogger("autobahn").setLevel(max(logging.ERROR, logging.getLogger().level))
    profile = os.environ.get("MEDIA_SFU_PROFILE")
    if profile:
        # developer aid: cProfile the whole process, dump to this path on exit
        import cProfile

        prof = cProfile.Profile()
        prof.enable()
        try:
            return asyncio.run(_run(config, args.ready_fd))
        finally:
            prof.disable()
            prof.dump_stats(profile)
    return asyncio.run(_run(config, args.ready_fd))


if __name__ == "__main__":
    sys.exit(main())
