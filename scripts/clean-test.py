#!/usr/bin/env python3
"""make bench FULL=1: the time of `make test` from a clean clone, as CI runs it (.ci/run).

Clones the project's HEAD (committed work only: uncommitted changes are not in the clone, and the line
says which commit was measured) into target/clean-test/, runs `make test` there with nothing built and no
venv, and appends one line to the TSV file given as the argument: date, commit, exit status, wall and CPU
time (user + sys of every process make waited for), and the load average before and after. The clone is
removed afterwards unless KEEP_CLEAN_TEST=1. A failed `make test` is recorded as such and fails this
script too, so `make bench FULL=1` never reports the time of a run that did not pass.
"""

from __future__ import annotations

import datetime as dt
import os
import pathlib
import resource
import shutil
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
HEADER = "date\tcommit\texit_status\twall_s\tcpu_s\tload_start\tload_end\n"


def load_average() -> str:
    return " ".join(pathlib.Path("/proc/loadavg").read_text().split()[:3])


def main() -> int:
    if len(sys.argv) != 2:
        print("usage: scripts/clean-test.py OUT.tsv", file=sys.stderr)
        return 2
    out = pathlib.Path(sys.argv[1])
    clone = ROOT / "target" / "clean-test"
    shutil.rmtree(clone, ignore_errors=True)
    clone.parent.mkdir(parents=True, exist_ok=True)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, check=True,
                            capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                           capture_output=True, text=True).stdout.strip()
    if dirty:
        print(f"clean-test: uncommitted changes are not measured; the clone is of {commit}", file=sys.stderr)
    subprocess.run(["git", "clone", "--quiet", "--no-hardlinks", str(ROOT), str(clone)], check=True)

    load_start = load_average()
    date = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    print(f"clean-test: make test in a clean clone of {commit} (target/clean-test)", file=sys.stderr, flush=True)
    status = subprocess.run(["make", "test"], cwd=clone).returncode
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)

    out.parent.mkdir(parents=True, exist_ok=True)
    new = not out.exists()
    with out.open("a") as f:
        if new:
            f.write(HEADER)
        f.write(f"{date}\t{commit}\t{status}\t{wall:.1f}\t{cpu:.1f}\t{load_start}\t{load_average()}\n")
    print(f"clean-test: make test exited {status} after {wall:.0f} s of wall, {cpu:.0f} s of CPU", file=sys.stderr)
    if os.environ.get("KEEP_CLEAN_TEST") != "1":
        shutil.rmtree(clone, ignore_errors=True)
    return 0 if status == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
