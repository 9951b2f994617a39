"""``python -m media_sfu --config wspr.yaml``: run the SFU until SIGTERM/SIGINT.

``wspr run`` spawns this as a child process so that the SFU gets its own core (aiortc is
asyncio-only and the GIL would otherwise make the homeserver and the SFU share one).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import signal
import sys

from .config import SFUConfig
from .server import SFUServer


async def _run(config: SFUConfig) -> None:
    server = SFUServer(config)
    await server.start()
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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m media_sfu", description="WSPR selective forwarding unit")
    ap.add_argument("--config", required=True, help="path to wspr.yaml (its sfu: section is read)")
    args = ap.parse_args(argv)
    try:
        config = SFUConfig.from_yaml_file(args.config)
    except (OSError, ValueError) as e:
        print(f"media_sfu: bad configuration: {e}", file=sys.stderr)
        return 2
    logging.basicConfig(level=config.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not config.enabled:
        logging.getLogger("media_sfu").info("sfu.enabled is false; exiting")
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
            asyncio.run(_run(config))
        finally:
            prof.disable()
            prof.dump_stats(profile)
        return 0
    asyncio.run(_run(config))
    return 0


if __name__ == "__main__":
    sys.exit(main())
