#!/usr/bin/env python3
"""make reliability: writes RELIABILITY.md's generated sections from what the last runs left in target/.

- `<!-- matrix -->`: target/fault-matrix.md, the table the fault matrix test prints (operations x faults).
- `<!-- runs -->`: the "Running" and "test result" lines of target/reliability.log (the cargo test run of
  the matrix, protocol, answerer and hostile-input tests that `make reliability` has just made).
- `<!-- fuzz -->`: per fuzz target, what libFuzzer said at the end of the last `make fuzz`
  (target/fuzz-<target>.log): executions, seconds, executions per second, corpus size, coverage, and the
  crashes, leaks and timeouts it wrote (fuzz/artifacts/<target>/). A target without a log is said to be
  not run, with no figure made up for it.

A section whose input is missing is left as it is, and the script says so.
"""

from __future__ import annotations

import datetime as dt
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
DOC = ROOT / "RELIABILITY.md"
TARGETS = ("properties", "event")


def replace(text: str, marker: str, body: str) -> str:
    pattern = re.compile(rf"(?s)<!-- {marker} -->.*<!-- /{marker} -->")
    if not pattern.search(text):
        sys.exit(f"reliability: RELIABILITY.md has no <!-- {marker} --> section")
    return pattern.sub(lambda _: f"<!-- {marker} -->\n{body}\n<!-- /{marker} -->", text)


def runs_section(log: str) -> str:
    lines = [line for line in log.splitlines() if line.startswith(("     Running", "test result"))]
    # The hash in the test binary's path changes with every build and says nothing.
    lines = [re.sub(r"\(target/debug/deps/([a-z_]+)-[0-9a-f]+\)", r"(\1)", line) for line in lines]
    return "```text\n" + "\n".join(lines) + "\n```"


def fuzz_figures(log: str) -> dict[str, str]:
    """What libFuzzer printed at the end of a run: its final stats and its last status line."""
    figures: dict[str, str] = {}
    for name, value in re.findall(r"^stat::([a-z_]+):\s+(\d+)", log, re.M):
        figures[name] = value
    done = re.findall(r"^Done (\d+) runs in (\d+) second", log, re.M)
    if done:
        figures["runs"], figures["seconds"] = done[-1]
    status = re.findall(r"^#(\d+)\s+(?:DONE|pulse|NEW|REDUCE|INITED)\s+cov: (\d+) ft: (\d+) corp: (\d+)/(\S+)", log, re.M)
    if status:
        _, figures["cov"], figures["ft"], figures["corpus"], figures["corpus_size"] = status[-1]
    figures["crashed"] = "yes" if re.search(r"^==\d+==ERROR|panicked at|^SUMMARY: ", log, re.M) else "no"
    return figures


def artifacts(target: str) -> int:
    folder = ROOT / "fuzz" / "artifacts" / target
    return sum(1 for p in folder.iterdir() if p.is_file()) if folder.is_dir() else 0


def fuzz_section() -> str | None:
    rows = []
    seen = False
    for target in TARGETS:
        log_path = ROOT / "target" / f"fuzz-{target}.log"
        if not log_path.exists():
            rows.append(f"| `{target}` | not run | | | | | | {artifacts(target)} |")
            continue
        seen = True
        f = fuzz_figures(log_path.read_text(errors="replace"))
        runs = f.get("number_of_executed_units") or f.get("runs", "?")
        seconds = f.get("seconds", "?")
        rate = f.get("average_exec_per_sec", "?")
        when = dt.datetime.fromtimestamp(log_path.stat().st_mtime, dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        rows.append(
            f"| `{target}` | {when} | {runs} | {seconds} | {rate} | {f.get('corpus', '?')} ({f.get('corpus_size', '?')}) "
            f"| {f.get('cov', '?')} | {f.get('crashed')} | {artifacts(target)} |"
        )
    if not seen:
        return None
    head = (
        "| target | run ended | executions | seconds | executions/s | corpus (size) | coverage (edges) "
        "| crash, leak or timeout | files in fuzz/artifacts |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    )
    return head + "\n" + "\n".join(rows)


def main() -> None:
    text = DOC.read_text()
    matrix = ROOT / "target" / "fault-matrix.md"
    if matrix.exists():
        text = replace(text, "matrix", matrix.read_text().rstrip("\n"))
    else:
        print("reliability: no target/fault-matrix.md; the matrix section is left as it is", file=sys.stderr)
    log = ROOT / "target" / "reliability.log"
    if log.exists():
        text = replace(text, "runs", runs_section(log.read_text(errors="replace")))
    else:
        print("reliability: no target/reliability.log; the runs section is left as it is", file=sys.stderr)
    fuzz = fuzz_section()
    if fuzz:
        text = replace(text, "fuzz", fuzz)
    else:
        print("reliability: no target/fuzz-*.log (run `make fuzz`); the fuzz table is left as it is", file=sys.stderr)
    DOC.write_text(text)


if __name__ == "__main__":
    main()
