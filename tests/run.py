"""Runs the whole Python suite under trial and ends with the slowest tests and one plain
summary line ('N passed, N failed, N skipped') that CI can read.

The tests spend most of their time waiting on servers they started (WSPR, Synapse, nginx,
Node clients), so four trial workers (``-j``, ``WSPR_TEST_JOBS``, default 4) cut the wall
time even on a 2-core machine (a worker mostly idles, at a few per cent of a core);
``WSPR_TEST_JOBS=1`` runs them in one process.

The calls through the SFU are the exception: they encode and decode real audio and video
for seconds on end and count the frames that arrived, so next to the other workers they
starve and miss frames. So does the typing exchange with a real Synapse (its EDU test
failed in three of five parallel runs, never alone; why is not understood yet). A
whole-suite run keeps these (``SERIAL``) for a second, one-process trial run after the
parallel one.

A test that fails is run once more, alone, after both (``WSPR_TEST_RETRIES``, default 1): the
suite drives real servers, browsers and media on a shared 2-core machine, where a wait misses
by a second now and then. A test that fails again fails the run; one that passes on its retry
is named in the summary as flaky, never hidden."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field

# A test's line may be broken by what the test prints: its name and its result are read apart.
_NAME = re.compile(r"^\s+(test\w*) \.\.\.")
_RESULT = re.compile(r"\[(OK|FAIL|ERROR|SKIPPED|TODO|SUCCESS!\?!)\]\s*$")

# The ids trial lists under each traceback or reason (tests.pkg.module.Class.test_name), in
# summary sections headed "[FAIL]", "[ERROR]", "[SKIPPED]", ...: only some of them are failures.
_FAILED_ID = re.compile(r"^(tests(?:\.\w+)+)\s*$")
_SECTION = re.compile(r"^\[([A-Z][A-Z !?]*)\]\s*$")
_FAILURE_SECTIONS = {"FAIL", "ERROR", "UNEXPECTED SUCCESS"}

# Modules that need the machine's cores to themselves (real-time media, Synapse's EDUs).
SERIAL = [
    "tests.media_sfu.test_call_e2e",
    "tests.media_sfu.test_browser_call",
    "tests.media_sfu.test_call_via_homeserver",
    "tests.federation.test_synapse_interop",
]


@dataclass
class Run:
    code: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    durations: list[tuple[float, str]] = field(default_factory=list)
    failed_ids: list[str] = field(default_factory=list)
    listed: int = 0  # ids listed under failures, with repeats (a test can fail and error)

    @property
    def explained(self) -> bool:
        """Whether every failure counted has a test id to run again."""
        return self.listed >= self.counts["failures"] + self.counts["errors"] + self.counts["unexpectedSuccesses"]


def all_modules_but(excluded: list[str]) -> list[str]:
    """Every test module under tests/, as trial names, except those listed."""
    top = os.path.dirname(os.path.abspath(__file__))
    found = []
    for directory, dirs, files in os.walk(top):
        dirs[:] = sorted(d for d in dirs if os.path.isfile(os.path.join(directory, d, "__init__.py")))
        for name in sorted(files):
            if name.startswith("test_") and name.endswith(".py"):
                rel = os.path.relpath(os.path.join(directory, name[:-3]), os.path.dirname(top))
                found.append(rel.replace(os.sep, "."))
    return [m for m in found if m not in excluded]


def trial(args: list[str], jobs: int, temp: str) -> Run:
    parallel = ["-j", str(jobs)] if jobs > 1 else []
    proc = subprocess.Popen(
        [sys.executable, "-m", "twisted.trial", f"--temp-directory={temp}", *parallel, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    run = Run()
    last = time.monotonic()
    group = name = ""
    last_lines: list[str] = []
    in_summary = False
    section = ""
    for line in proc.stdout:
        sys.stdout.write(line)
        sys.stdout.flush()
        last_lines = (last_lines + [line])[-5:]
        now = time.monotonic()
        if line.startswith("=" * 70):
            in_summary = True
        header = _SECTION.match(line) if in_summary else None
        if header:
            section = header.group(1)
        failed_id = _FAILED_ID.match(line) if in_summary and section in _FAILURE_SECTIONS else None
        if failed_id:
            run.listed += 1
            if failed_id.group(1) not in run.failed_ids:
                run.failed_ids.append(failed_id.group(1))
        named = _NAME.match(line)
        if named:
            name = named.group(1)
        if _RESULT.search(line):
            # Time between two finished tests: the test itself, plus its class's setup when it
            # is the first of its class (with several workers, roughly divided by the overlap).
            run.durations.append((now - last, f"{group}.{name}"))
            last = now
        elif not named and line.strip() and not line.startswith((" ", "=", "-")):
            group = line.strip()
    run.code = proc.wait()
    run.counts = {"successes": 0, "failures": 0, "errors": 0, "skips": 0, "expectedFailures": 0, "unexpectedSuccesses": 0}
    for line in last_lines:
        for key, value in re.findall(r"(\w+)=(\d+)", line):
            if key in run.counts:
                run.counts[key] = int(value)
    return run


def main() -> int:
    jobs = int(os.environ.get("WSPR_TEST_JOBS", "4"))
    started = time.monotonic()
    if sys.argv[1:]:
        runs = [trial(sys.argv[1:], jobs, "_trial_temp")]
    else:
        runs = [trial(all_modules_but(SERIAL), jobs, "_trial_temp")]
        print(f"\none at a time: {' '.join(SERIAL)}\n", flush=True)
        runs.append(trial(SERIAL, 1, "_trial_temp_serial"))
    counts = {k: sum(r.counts.get(k, 0) for r in runs) for k in runs[0].counts}
    flaky: list[str] = []
    failed_ids = [i for r in runs for i in r.failed_ids]
    retries = int(os.environ.get("WSPR_TEST_RETRIES", "1"))
    # Only a few failures with known ids are retried: many at once is a real breakage.
    if failed_ids and all(r.explained for r in runs) and len(failed_ids) <= 10:
        for attempt in range(retries):
            print(f"\nagain, alone (attempt {attempt + 2}): {' '.join(failed_ids)}\n", flush=True)
            again = trial(failed_ids, 1, "_trial_temp_retry")
            passed_now = [i for i in failed_ids if again.explained and i not in again.failed_ids]
            flaky += passed_now
            failed_ids = [i for i in failed_ids if i not in passed_now]
            if not failed_ids:
                break
        for r in runs:
            r.code = 0 if not failed_ids else r.code
        counts["failures"], counts["errors"], counts["unexpectedSuccesses"] = len(failed_ids), 0, 0
        counts["successes"] += len(flaky)
    print("\nslowest tests (seconds between results):")
    for seconds, name in sorted((d for r in runs for d in r.durations), reverse=True)[:25]:
        print(f"  {seconds:7.1f}  {name}")
    passed = counts["successes"] + counts["expectedFailures"]
    failed = counts["failures"] + counts["errors"] + counts["unexpectedSuccesses"]
    if flaky:
        print(f"\nflaky (failed, then passed alone; look at them): {' '.join(flaky)}")
    print(f"\ntests: {passed} passed, {failed} failed, {counts['skips']} skipped in {time.monotonic() - started:.0f} s")
    return next((r.code for r in runs if r.code != 0), 0)


if __name__ == "__main__":
    sys.exit(main())
