"""Helper process for test_call_e2e.DropTest: join a call, publish, print READY, wait forever
(the test then kills it with SIGKILL, like a crashed client)."""

import asyncio
import sys

from tests.media_sfu.livekit_call import CallClient


async def main(url: str, room: str) -> None:
    c = CallClient("dropper", 2)
    await c.join(url, room)
    await c.publish()
    print("READY", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
