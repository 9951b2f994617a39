#!/usr/bin/env python
"""Hostile requests without an account (issue 9, findings 3 and 4): what they cost the server.

    python bench/hostile_bodies.py [--code DIR] [--declared-gib 3] [--chunked-gib 1] [--json out.json]

Starts WSPR (`wspr init` + `wspr run`, SQLite) with TMPDIR pointing at a fresh directory,
then runs each attack in turn while a sampler reads the server's /proc every 20 ms:

1. declared  `POST /_matrix/client/v3/login` with `Content-Length: <declared-gib> GiB`,
             the client pushing the body as fast as the server takes it;
2. chunked   the same with `Transfer-Encoding: chunked` and no length;
3. thumbs    a 5650x5650 RGBA PNG (138 KB) uploaded once, then 6 thumbnail requests of
             different sizes in parallel, then 6 of one size in parallel.

Per attack: what the client got in before the answer, the answer and how long it took, the
server's peak RSS above its RSS before the attack (VmHWM, reset through
/proc/PID/clear_refs before each attack), its RSS 2 s after, and the most it held in
temporary files at once (its open files under TMPDIR, deleted or not, by size) and what
was left in TMPDIR afterwards. For thumbnails also the thumbnail files on disk.

`--code DIR` runs the server from another checkout (e.g. `git worktree add /tmp/old <commit>`)
to compare with the code before the fix in the same session.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import io
import json
import os
import select
import shutil
import socket
import sys
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import WsprServer, bench_workdir, exit_on_sigterm  # noqa: E402

MiB = 1024 * 1024
GiB = 1024 * MiB


class Sampler:
    """Peak RSS and temporary-file bytes of one process, sampled on a thread."""

    def __init__(self, pid: int, tmpdir: str) -> None:
        self.pid = pid
        self.tmpdir = os.path.realpath(tmpdir) + "/"
        self.peak_tmp = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def status_kib(self, field: str) -> int:
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
        return 0

    def tmp_bytes(self) -> int:
        total = 0
        fd_dir = f"/proc/{self.pid}/fd"
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            return 0
        for fd in fds:
            try:
                target = os.readlink(f"{fd_dir}/{fd}")
                if target.startswith(self.tmpdir):
                    total += os.stat(f"{fd_dir}/{fd}").st_size
            except OSError:
                continue
        return total

    def __enter__(self) -> Sampler:
        with open(f"/proc/{self.pid}/clear_refs", "w") as f:
            f.write("5")  # VmHWM := current RSS
        self.rss_before = self.status_kib("VmRSS")
        self.peak_tmp = 0
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_tmp = max(self.peak_tmp, self.tmp_bytes())
            time.sleep(0.02)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join()
        self.peak_tmp = max(self.peak_tmp, self.tmp_bytes())
        self.peak_rss_growth = (self.status_kib("VmHWM") - self.rss_before) / 1024
        time.sleep(2)
        self.rss_after_growth = (self.status_kib("VmRSS") - self.rss_before) / 1024


def dir_bytes(path: str) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += os.stat(os.path.join(root, f)).st_size
            except OSError:
                pass
    return total


def push(port: int, head: bytes, chunks, wait_first: float = 2.0) -> dict:
    """Sends head, waits up to wait_first s for an answer, then sends chunks until the
    server answers or closes; the answer's status and when it came (after the headers if
    it came in wait_first, else after the first byte of the body)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    start = time.monotonic()
    sent = 0
    answered_at = None
    raw = b""
    try:
        sock.sendall(head)
        if select.select([sock], [], [], wait_first)[0]:
            answered_at = time.monotonic()
        else:
            start = time.monotonic()  # from the first byte of the body
            for chunk in chunks:
                sock.sendall(chunk)
                sent += len(chunk)
                if select.select([sock], [], [], 0)[0]:
                    answered_at = time.monotonic()
                    break
    except OSError:
        pass
    try:
        sock.settimeout(300)
        while b"\r\n\r\n" not in raw:
            data = sock.recv(65536)
            if not data:
                break
            raw += data
    except OSError:
        pass
    done = time.monotonic()
    sock.close()
    status = raw.split(b" ", 2)[1].decode() if raw.startswith(b"HTTP/") else "none"
    return {"sent_mib": sent / MiB, "status": status, "answer_s": (answered_at or done) - start}


def body_chunks(total: int, chunked: bool, size: int = 256 * 1024):
    block = b"0" * size
    if chunked:
        block = b"%x\r\n" % size + block + b"\r\n"
    for _ in range(total // size):
        yield block


def huge_png() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGBA", (5650, 5650), (255, 0, 0, 128)).save(buf, "PNG")
    return buf.getvalue()


def http(method: str, url: str, token: str, data: bytes | None = None, ctype: str | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=data, method=method, headers={"Authorization": f"Bearer {token}"})
    if ctype:
        req.add_header("Content-Type", ctype)
    try:
        with urllib.request.urlopen(req, timeout=600) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def run(args: argparse.Namespace) -> dict:
    workdir = bench_workdir("wspr-hostile-", args.workdir)
    tmpdir = os.path.join(workdir, "tmp")
    os.makedirs(tmpdir)
    os.environ["TMPDIR"] = tmpdir
    if args.code:
        launcher = os.path.join(workdir, "launch_wspr.py")
        with open(launcher, "w") as f:
            f.write(f"import sys\nsys.path.insert(0, {os.path.abspath(args.code)!r})\nfrom homeserver.cli import main\nsys.exit(main())\n")
        os.environ["WSPR_CMD"] = f"{sys.executable} {launcher}"
    server = WsprServer(os.path.join(workdir, "hs"), extra_config={"log_level": "WARNING", "web_client": {"enabled": False}})
    results: dict = {"code": args.code or "this checkout"}
    try:
        server.start()
        time.sleep(1)
        port = server.http_port
        sampler = Sampler(server.pid, tmpdir)
        print(f"server pid {server.pid}, RSS {sampler.status_kib('VmRSS') / 1024:.0f} MiB, TMPDIR {tmpdir}")

        for name, total, chunked in (
            ("declared", int(args.declared_gib * GiB), False),
            ("chunked", int(args.chunked_gib * GiB), True),
        ):
            length = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {total}"
            head = f"POST /_matrix/client/v3/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{length}\r\n\r\n".encode()
            with sampler:
                out = push(port, head, body_chunks(total, chunked))
            out.update(
                peak_rss_growth_mib=sampler.peak_rss_growth,
                rss_after_growth_mib=sampler.rss_after_growth,
                peak_tmp_mib=sampler.peak_tmp / MiB,
                tmp_left_mib=dir_bytes(tmpdir) / MiB,
            )
            results[name] = out
            print(f"{name:9s} body {total / GiB:.2f} GiB: {out}")

        user = server.register_user("attacker", "attacker-password")
        token = user["access_token"]
        base = server.client_url
        code, body = http("POST", base + "/_matrix/media/v3/upload", token, huge_png(), "image/png")
        media_id = json.loads(body)["content_uri"].rsplit("/", 1)[1]
        thumb = base + f"/_matrix/client/v1/media/thumbnail/{server.server_name}/{media_id}?width={{}}&height={{}}&method={{}}"
        for name, sizes in (
            ("thumbs6", [(32, 32, "crop"), (100, 100, "crop"), (300, 300, "scale"), (641, 481, "scale"), (1000, 1000, "scale"), (2000, 1900, "scale")]),
            # A size the first round did not make (320x240 for this image).
            ("thumbs6same", [(200, 200, "scale")] * 6),
        ):
            start = time.monotonic()
            with sampler, concurrent.futures.ThreadPoolExecutor(len(sizes)) as pool:
                codes = [c for c, _ in pool.map(lambda s: http("GET", thumb.format(*s), token), sizes)]
            elapsed = time.monotonic() - start
            thumbs_dir = os.path.join(server.workdir, "media")
            files = sum(len(f) for r, _, f in os.walk(thumbs_dir) if "thumbnails" in r)
            out = {
                "codes": codes,
                "seconds": elapsed,
                "peak_rss_growth_mib": sampler.peak_rss_growth,
                "rss_after_growth_mib": sampler.rss_after_growth,
                "thumbnail_files": files,
            }
            results[name] = out
            print(f"{name:11s}: {out}")
    finally:
        server.stop()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    return results


def main() -> None:
    exit_on_sigterm()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--code", help="run the server from this checkout instead")
    p.add_argument("--declared-gib", type=float, default=3.0)
    p.add_argument("--chunked-gib", type=float, default=1.0)
    p.add_argument("--workdir", default=None)
    p.add_argument("--keep", action="store_true")
    p.add_argument("--json", default=None)
    args = p.parse_args()
    results = run(args)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
