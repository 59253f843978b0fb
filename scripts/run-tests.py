#!/usr/bin/env python3
"""Runs every test binary of the workspace, several at once, and says which failed.

`cargo test` runs its test binaries one after another, and each runs two tests at a time on a 2-core
machine; but these tests mostly wait (on the emulator, on a handler's deadline, on a slow answer the
fault matrix injects), so a whole run takes far longer than its CPU time. Each binary starts its own
emulator and every test has its own account, so binaries can run side by side: this runs TEST_JOBS
binaries at once (default 3), the slowest of the last run first, each with its output in
target/test-logs/<name>.log, printed when it fails. The tests are built first (`cargo test --no-run`);
arguments after `--` go to every binary (a test name filter, `--nocapture`).

Usage: scripts/run-tests.py [--jobs N] [-- <libtest arguments>]
"""

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOGS = ROOT / "target" / "test-logs"
TIMES = LOGS / "times.json"


def binaries() -> list[dict]:
    """Every test executable of the workspace, built now, with the folder cargo would run it in."""
    cargo = os.environ.get("CARGO", "cargo")
    built = subprocess.run(
        [cargo, "test", "--workspace", "--no-run", "--message-format=json-render-diagnostics"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        check=False,
    )
    if built.returncode != 0:
        sys.exit(f"cargo test --no-run failed (exit {built.returncode})")
    found = []
    for line in built.stdout.decode().splitlines():
        message = json.loads(line)
        if message.get("reason") != "compiler-artifact" or not message.get("executable"):
            continue
        if not message["profile"]["test"]:
            continue
        target = message["target"]
        kind = target["kind"][0]
        package = Path(message["manifest_path"]).parent
        found.append(
            {
                "name": target["name"] if kind == "test" else f"{target['name']} ({kind})",
                "exe": message["executable"],
                "cwd": str(package),
            }
        )
    return found


def run_one(binary: dict, extra: list[str], lock: threading.Lock) -> dict:
    log = LOGS / (binary["name"].replace(" ", "_").replace("(", "").replace(")", "") + ".log")
    started = time.monotonic()
    with open(log, "wb") as out:
        code = subprocess.run(
            [binary["exe"], *extra], cwd=binary["cwd"], stdout=out, stderr=subprocess.STDOUT, check=False
        ).returncode
    took = time.monotonic() - started
    text = log.read_text(errors="replace")
    results = [l for l in text.splitlines() if l.startswith("test result:")]
    summary = results[-1] if results else "(no test result line)"
    with lock:
        print(f"{'ok  ' if code == 0 else 'FAIL'} {binary['name']:<40} {took:6.1f} s  {summary}", flush=True)
        if code != 0:
            print(f"---- {log.relative_to(ROOT)} ----\n{text}\n---- end of {binary['name']} ----", flush=True)
    return {"name": binary["name"], "code": code, "seconds": took, "log": str(log)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=int(os.environ.get("TEST_JOBS", "3")))
    parser.add_argument("extra", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    extra = args.extra[1:] if args.extra[:1] == ["--"] else args.extra

    todo = binaries()
    LOGS.mkdir(parents=True, exist_ok=True)
    previous = json.loads(TIMES.read_text()) if TIMES.exists() else {}
    # The slowest first, so that the last to finish is a short one; unknown ones count as slow.
    todo.sort(key=lambda b: -previous.get(b["name"], 1e9))
    print(f"{len(todo)} test binaries, {args.jobs} at a time (logs in {LOGS.relative_to(ROOT)}/)", flush=True)

    lock = threading.Lock()
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        outcomes = list(pool.map(lambda b: run_one(b, extra, lock), todo))
    failed = [o for o in outcomes if o["code"] != 0]
    if not extra:
        TIMES.write_text(json.dumps({o["name"]: round(o["seconds"], 1) for o in outcomes}, indent=1))
    print(
        f"\n{len(outcomes) - len(failed)} of {len(outcomes)} test binaries passed in "
        f"{time.monotonic() - started:.0f} s" + (f"; failed: {', '.join(o['name'] for o in failed)}" if failed else ""),
        flush=True,
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
