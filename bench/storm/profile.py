"""Where a Tidings process's event loop spends its time, from `bench.storm --profile` files.

    python -m bench.storm.profile /tmp/prof/sqlite-web-run1.txt [...] [--top 25]

The files are py-spy's raw collapsed stacks recorded with `--idle --threads`. Only the main
thread (the event loop) is counted. A sample whose innermost frame is the loop's own run frame is
**idle** (the loop waiting for I/O); any other sample is busy and goes to the first Tidings
frame under the loop (the task that was running: `ingest/worker.py run`, `campaigns/fanout.py
run`, a request handler ...). SQLAlchemy runs an ORM call in a greenlet whose stack py-spy shows
without the coroutine above it: those samples are counted as `(greenlet: SQLAlchemy ORM)`.
Printed: idle share, busy share per task and per innermost Tidings function, which is the
answer to "what holds the loop while a customer's message waits".
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^:()]+)(?::(?P<line>\d+))?\)$")
LOOP_FRAMES = ("asyncio/runners.py", "asyncio/base_events.py")
# Frames that start every task of a kind, not the task itself.
SKIP = frozenset({"tidings/cli.py", "tidings/workers/registry.py"})


def parse(line: str) -> tuple[str, list[tuple[str, str]], int] | None:
    stack, _, count = line.rstrip("\n").rpartition(" ")
    if not stack or not count.isdigit():
        return None
    parts = stack.split(";")
    thread = parts[0]
    frames = []
    for part in parts[1:]:
        m = FRAME.match(part)
        frames.append((m["func"], m["file"]) if m else (part, ""))
    return thread, frames, int(count)


def task_of(frames: list[tuple[str, str]]) -> str:
    """The first Tidings frame under the loop, or what the stack is when none is there."""
    for func, file in frames:
        if file.startswith("tidings/") and file not in SKIP:
            return f"{file} {func}"
    for _func, file in frames:
        if file.startswith(("uvicorn/", "starlette/", "fastapi/", "httptools")):
            return f"(HTTP server: {file.split('/')[0]})"
    if any(file.startswith("sqlalchemy/") for _f, file in frames):
        return "(greenlet: SQLAlchemy ORM)"
    return "(other: " + (frames[-1][1] or frames[-1][0]) + ")"


def leaf_of(frames: list[tuple[str, str]]) -> str:
    """The innermost Tidings frame (where in our code the time was spent, callees included)."""
    for func, file in reversed(frames):
        if file.startswith("tidings/") and file not in SKIP:
            return f"{file} {func}"
    return task_of(frames)


def summarise(paths: list[Path], top: int) -> str:
    tasks: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    libs: Counter[str] = Counter()
    idle = busy = 0
    for path in paths:
        for line in path.read_text(errors="replace").splitlines():
            parsed = parse(line)
            if parsed is None:
                continue
            thread, frames, count = parsed
            if "MainThread" not in thread or not frames:
                continue
            if frames[-1][1] in LOOP_FRAMES or frames[-1][0] in ("run_forever", "_run_once"):
                idle += count
                continue
            busy += count
            tasks[task_of(frames)] += count
            leaves[leaf_of(frames)] += count
            libs[(frames[-1][1].split("/")[0] or frames[-1][0])] += count
    total = idle + busy
    if total == 0:
        return "no main-thread samples"
    out = [
        f"{len(paths)} file(s), {total:,} main-thread samples: idle {idle / total:.1%}, "
        f"busy {busy / total:.1%}",
        "",
        "busy, by task (first Tidings frame under the loop), % of all samples:",
    ]
    out += [f"  {n / total:6.1%}  {name}" for name, n in tasks.most_common(top)]
    out += ["", "busy, by innermost Tidings function (callees included), % of all samples:"]
    out += [f"  {n / total:6.1%}  {name}" for name, n in leaves.most_common(top)]
    out += ["", "busy, by the module of the innermost frame (self time), % of all samples:"]
    out += [f"  {n / total:6.1%}  {name}" for name, n in libs.most_common(12)]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args(argv)
    print(summarise(args.files, args.top))


if __name__ == "__main__":
    main()
