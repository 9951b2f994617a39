"""Runs the whole Python suite under trial and ends with one plain summary line
('N passed, N failed, N skipped') that CI can read."""

from __future__ import annotations

import re
import subprocess
import sys


def main() -> int:
    args = sys.argv[1:] or ["tests"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "twisted.trial", "--temp-directory=_trial_temp", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    last_lines: list[str] = []
    for line in proc.stdout:
        sys.stdout.write(line)
        last_lines = (last_lines + [line])[-5:]
    code = proc.wait()
    counts = {"successes": 0, "failures": 0, "errors": 0, "skips": 0, "expectedFailures": 0, "unexpectedSuccesses": 0}
    for line in last_lines:
        for key, value in re.findall(r"(\w+)=(\d+)", line):
            if key in counts:
                counts[key] = int(value)
    passed = counts["successes"] + counts["expectedFailures"]
    failed = counts["failures"] + counts["errors"] + counts["unexpectedSuccesses"]
    print(f"\ntests: {passed} passed, {failed} failed, {counts['skips']} skipped")
    return code


if __name__ == "__main__":
    sys.exit(main())
