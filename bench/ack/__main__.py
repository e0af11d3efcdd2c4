"""Acknowledgement latency under a broadcast's status webhooks, open loop (issue 14, item 4).

    .venv/bin/python -m bench.ack                      # 3 runs x 60 s at 3,000 statuses/s
    .venv/bin/python -m bench.ack --seconds 10 --runs 1  # a quick look

Each run starts a fresh `tidings serve` (embedded default: SQLite in WAL, synchronous=FULL, the
ingest worker in-process) on a temporary directory on the real disk, and prepares it:

1. a WhatsApp channel through the API, and 20 customers' conversations, created by posting
   their inbound message webhooks and letting the worker process them;
2. `rate x seconds / 3` outbound messages in those conversations, status `queued`, each with
   its own `wamid` (inserted straight into the SQLite file before the measurement: what is
   measured is the webhook path, not the send path, and sending 60,000 messages first would
   take minutes);
3. for every message its `sent`, `delivered` and `read` status webhook, signed with the app
   secret (`X-Hub-Signature-256` over the exact bytes), one status per POST, as Meta sends
   them; in blocks of 1,000 messages: the block's `sent`, then `delivered`, then `read`.

Then `--senders` processes (`bench/ack/sender.py`) post them on one shared fixed schedule,
event g due at `start + g / rate` (open loop: the offered rate does not drop when the server
slows down; latency is measured from the scheduled time, so a stall cannot hide). Not wrk:
Debian's wrk is closed-loop (no fixed-rate mode; that is wrk2), so a server stall would lower
the offered rate instead of showing in the latency. Three sender processes offer 3,000/s on
this 2-core machine with a few ms of schedule slip (`sender_behind_max_ms` in the JSON says
how far a sender fell behind its schedule; it counts in the latency anyway). Afterwards:

- acks/s (2xx answers ÷ the time from the first scheduled send to the last answer), ack
  p50/p99/max in ms, non-2xx (including connection errors and 30 s timeouts);
- stored: status events in `inbound_event` for the channel; every acknowledged event must be
  stored (by key) and the table holds each key at most once (unique index; checked anyway);
- processed: stored events the worker has finished (`done`), and outbound messages whose
  status reached `read` (the worker really applied the statuses);
- drain: seconds from the last answer until no event is pending (bounded by --drain-timeout).

Loopback only; bounded by --seconds, the rate and the timeouts. Exit status 1 if anything
acknowledged was not stored or stored twice (never because of speed).
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx

from bench.common import child, free_port, machine_facts, wait_http, whatsapp_envelope
from bench.ingest.run import (
    APP_SECRET,
    PHONE_NUMBER_ID,
    count,
    create_channel,
    query,
    tidings_cli,
    tidings_env,
    whatsapp_body,
)

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
CUSTOMERS = 20
BLOCK = 1_000
TARGET_P99_MS = 50.0


def log(msg: str) -> None:
    print(f"[bench.ack] {msg}", file=sys.stderr, flush=True)


def sign(body: bytes) -> str:
    return hmac.new(APP_SECRET.encode(), body, hashlib.sha256).hexdigest()


def status_body(wamid: str, status: str, ts: int, customer: int) -> bytes:
    """One status in Meta's envelope (compact, ASCII-escaped JSON, as Meta serialises it)."""
    recipient = f"1650555{customer:04d}"
    statuses = [{"id": wamid, "status": status, "timestamp": str(ts), "recipient_id": recipient}]
    payload = whatsapp_envelope(PHONE_NUMBER_ID, statuses=statuses)
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=True).encode()


def commit_stats(base: str) -> dict[str, dict[str, float]]:
    """The group-commit histogram from /metrics: per phase, cumulative bucket counts and sum."""
    out: dict[str, dict[str, float]] = {}
    for line in httpx.get(f"{base}/metrics", timeout=10).text.splitlines():
        if not line.startswith("tidings_group_commit_seconds"):
            continue
        name, value = line.rsplit(" ", 1)
        phase = name.split('phase="', 1)[1].split('"', 1)[0]
        if "_bucket" in name:
            le = name.split('le="', 1)[1].split('"', 1)[0]
            out.setdefault(phase, {})[le] = float(value)
        elif name.startswith("tidings_group_commit_seconds_sum"):
            out.setdefault(phase, {})["sum"] = float(value)
    return out


def commit_summary(before: dict[str, dict[str, float]], after: dict[str, dict[str, float]]) -> str:
    """Per phase: commits, mean ms and the bucket bound under which 50 % / 99 % fell."""
    parts = []
    for phase in ("wait", "commit"):
        a, b = after.get(phase, {}), before.get(phase, {})
        n = a.get("+Inf", 0) - b.get("+Inf", 0)
        if not n:
            continue
        mean = (a.get("sum", 0) - b.get("sum", 0)) / n * 1000
        bounds = sorted((float(k), v - b.get(k, 0)) for k, v in a.items() if k not in ("sum",))

        parts.append(
            f"{phase}: n {n:,.0f} mean {mean:.1f} ms p50 {_under(bounds, n, 0.5)} p99 {_under(bounds, n, 0.99)}"
        )
    return "; ".join(parts)


def _under(bounds: list[tuple[float, float]], n: float, q: float) -> str:
    """The smallest histogram bound under which a share `q` of the `n` observations fell."""
    for le, c in bounds:
        if c >= q * n:
            return f"<={le * 1000:g}" if le != float("inf") else ">2500"
    return "?"


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


@dataclass
class Run:
    offered: int
    rate: float
    acks_per_s: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    non_2xx: int
    acked_not_stored: int
    stored: int
    duplicates: int
    processed: int
    failed: int
    messages_read: int
    drain_s: float
    drained: bool
    peak_conns: int
    sender_behind_max_ms: float
    server_cpu_cores: float
    group_commits: str

    @property
    def ok(self) -> bool:
        return self.acked_not_stored == 0 and self.duplicates == 0


def prepare(base: str, webhook_url: str, db: Path, channel_id: int, messages: int) -> None:
    """Customers' conversations (through the webhook and the worker), then the outbound messages
    the status webhooks will refer to."""
    now = int(time.time())
    with httpx.Client(timeout=10) as client:
        for c in range(CUSTOMERS):
            body = whatsapp_body(f"wamid.ackin.{c}", c, now, f"hello {c}")
            r = client.post(
                webhook_url,
                content=body,
                headers={
                    "content-type": "application/json",
                    "x-hub-signature-256": f"sha256={sign(body)}",
                },
            )
            r.raise_for_status()
    deadline = time.monotonic() + 60
    sql = "SELECT count(*) FROM message WHERE channel_id = ? AND direction = 'in'"
    while count(db, sql, (channel_id,)) < CUSTOMERS:
        if time.monotonic() > deadline:
            raise RuntimeError("the worker did not create the customers' conversations")
        time.sleep(0.2)
    convs = query(
        db,
        "SELECT DISTINCT workspace_id, conversation_id FROM message WHERE channel_id = ? "
        "AND direction = 'in' ORDER BY conversation_id",
        (channel_id,),
    )
    # The timestamps' text format is the one SQLAlchemy's SQLite DateTime writes.
    stamp = time.strftime("%Y-%m-%d %H:%M:%S.000000", time.gmtime())
    rows = [
        (*convs[n % len(convs)], channel_id, f"bench {n}", f"wamid.ack.{n}", stamp, stamp, stamp)
        for n in range(messages)
    ]
    import sqlite3

    conn = sqlite3.connect(db, timeout=60)
    with conn:
        conn.executemany(
            "INSERT INTO message (workspace_id, conversation_id, channel_id, direction, kind, "
            "body, provider_message_id, status, sent_at, created_at, updated_at, extra) "
            "VALUES (?, ?, ?, 'out', 'text', ?, ?, 'queued', ?, ?, ?, '{}')",
            rows,
        )
    conn.close()


def events(messages: int) -> list[tuple[str, str, int]]:
    """(wamid, status, customer) in sending order."""
    out = []
    for start in range(0, messages, BLOCK):
        block = range(start, min(messages, start + BLOCK))
        for status in ("sent", "delivered", "read"):
            out.extend((f"wamid.ack.{n}", status, n % CUSTOMERS) for n in block)
    return out


def one_run(args: argparse.Namespace, i: int, stack_dir: Path) -> Run:
    with ExitStack() as stack:
        tmp = Path(tempfile.mkdtemp(prefix="tidings-ack-", dir=stack_dir))
        stack.callback(shutil.rmtree, tmp, ignore_errors=True)
        data_dir = tmp / "data"
        db = data_dir / "tidings.db"
        port = free_port()
        env = tidings_env(data_dir, port)
        env.update(item.split("=", 1) for item in args.tidings_env)
        tidings_cli(env, "migrate")
        boot = json.loads(
            tidings_cli(env, "bootstrap", "--email", "bench@example.com", "--password", "x" * 16)
        )
        server = stack.enter_context(
            child(
                [str(Path(sys.executable).with_name("tidings")), "serve"],
                env=env,
                log=tmp / "tidings.log",
            )
        )
        base = f"http://127.0.0.1:{port}"
        wait_http(f"{base}/api/v1/openapi.json", proc=server)
        channel_id, webhook_url = create_channel(base, str(boot["api_token"]))
        path = "/" + webhook_url.split("/", 3)[3]
        offered = int(args.rate * args.seconds)
        messages = math.ceil(offered / 3)
        if env.get("TIDINGS_RUN_WORKERS") != "0":
            prepare(base, webhook_url, db, channel_id, messages)
        # else: a diagnosis run without the worker; the statuses are only stored
        evs = events(messages)[:offered]
        now = int(time.time())
        files = []
        for k in range(args.senders):
            f = tmp / f"requests-{k}.txt"
            with f.open("wb") as out:
                for wamid, status, customer in evs[k :: args.senders]:
                    body = status_body(wamid, status, now, customer)
                    out.write(sign(body).encode() + b" " + body + b"\n")
            files.append(f)
        log(f"run {i}: {messages:,} outbound messages, {offered:,} status webhooks prepared")

        stats0 = commit_stats(base)
        cpu0 = _cpu(server.pid)
        start = time.time() + 2.0
        procs = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "bench.ack.sender",
                    str(files[k]),
                    str(tmp / f"result-{k}.json"),
                    "--port",
                    str(port),
                    "--path",
                    path,
                    "--rate",
                    str(args.rate),
                    "--start",
                    str(start),
                    "--offset",
                    str(k),
                    "--stride",
                    str(args.senders),
                    "--max-conns",
                    str(args.max_conns),
                ],
                cwd=ROOT,
            )
            for k in range(args.senders)
        ]
        spy = None
        if args.profile is not None:
            args.profile.mkdir(parents=True, exist_ok=True)
            spy = subprocess.Popen(
                [
                    str(Path(sys.executable).with_name("py-spy")),
                    "record",
                    "--pid",
                    str(server.pid),
                    "--duration",
                    str(max(1, round(args.seconds))),
                    "--format",
                    "raw",
                    "--nonblocking",
                    "-o",
                    str(args.profile / f"ack-run{i}.txt"),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        for p in procs:
            p.wait(timeout=args.seconds + 120)
        if spy is not None:
            spy.wait(timeout=60)
        ended = time.time()
        cpu = _cpu(server.pid) - cpu0
        commits = commit_summary(stats0, commit_stats(base))
        results = [json.loads((tmp / f"result-{k}.json").read_text()) for k in range(args.senders)]
        latency: list[float] = []
        acked_keys: list[str] = []
        non_2xx = 0
        for k, res in enumerate(results):
            mine = evs[k :: args.senders]
            for (wamid, status, _c), code, lat in zip(
                mine, res["status"], res["latency"], strict=True
            ):
                latency.append(lat * 1000)
                if 200 <= code < 300:
                    acked_keys.append(f"status:{wamid}:{status}")
                else:
                    non_2xx += 1
        window = ended - start
        stored_keys = {
            k
            for (k,) in query(
                db,
                "SELECT event_key FROM inbound_event WHERE channel_id = ? "
                "AND event_key LIKE 'status:%'",
                (channel_id,),
            )
        }
        stored_rows = count(
            db,
            "SELECT count(*) FROM inbound_event WHERE channel_id = ? AND event_key LIKE 'status:%'",
            (channel_id,),
        )
        acked_not_stored = sum(1 for k in acked_keys if k not in stored_keys)

        t0 = time.monotonic()
        pending_sql = (
            "SELECT count(*) FROM inbound_event WHERE channel_id = ? AND state = 'pending'"
        )
        left = count(db, pending_sql, (channel_id,))
        while left and time.monotonic() - t0 < args.drain_timeout:
            time.sleep(0.5)
            left = count(db, pending_sql, (channel_id,))
        drain = time.monotonic() - t0
        by_state = dict(
            query(
                db,
                "SELECT state, count(*) FROM inbound_event WHERE channel_id = ? "
                "AND event_key LIKE 'status:%' GROUP BY state",
                (channel_id,),
            )
        )
        read = count(
            db,
            "SELECT count(*) FROM message WHERE channel_id = ? AND direction = 'out' "
            "AND status = 'read'",
            (channel_id,),
        )
        if server.poll() is not None:
            log(f"run {i}: tidings exited early with {server.returncode}")
        run = Run(
            offered=offered,
            rate=args.rate,
            acks_per_s=len(acked_keys) / window,
            p50_ms=pct(latency, 0.50),
            p99_ms=pct(latency, 0.99),
            max_ms=max(latency) if latency else float("nan"),
            non_2xx=non_2xx,
            acked_not_stored=acked_not_stored,
            stored=len(stored_keys),
            duplicates=stored_rows - len(stored_keys),
            processed=int(by_state.get("done", 0)),
            failed=int(by_state.get("failed", 0)),
            messages_read=read,
            drain_s=drain,
            drained=left == 0,
            peak_conns=sum(int(r["peak_conns"]) for r in results),
            sender_behind_max_ms=max(float(r["sender_behind_max_s"]) for r in results) * 1000,
            server_cpu_cores=cpu / window,
            group_commits=commits,
        )
        log(f"run {i}: {json.dumps(asdict(run))}")
        if args.keep_log:
            shutil.copy(tmp / "tidings.log", args.keep_log.with_suffix(f".{i}.log"))
        return run


def _cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--rate", type=float, default=3000.0, help="status webhooks/s offered")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--senders", type=int, default=3, help="sender processes")
    parser.add_argument("--max-conns", type=int, default=128, help="connections per sender")
    parser.add_argument("--drain-timeout", type=float, default=600.0)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--keep-log", type=Path, help="copy each run's server log here")
    parser.add_argument(
        "--profile", type=Path, help="record the server with py-spy (pip install py-spy) here"
    )
    parser.add_argument("--tidings-env", action="append", default=[], metavar="NAME=VALUE")
    args = parser.parse_args(argv)
    if not 1 <= args.seconds <= 300 or not 1 <= args.rate <= 10_000:
        parser.error("--seconds must be within 1..300 and --rate within 1..10000")
    facts = machine_facts()
    runs = []
    scratch = Path(tempfile.mkdtemp(prefix="tidings-ack-"))  # on disk: fsync is real
    try:
        for i in range(1, args.runs + 1):
            runs.append(one_run(args, i, scratch))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    facts["load_after"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print_report(args, facts, runs)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps({"facts": facts, "runs": [asdict(r) for r in runs]}, indent=2)
        )
    return 0 if all(r.ok for r in runs) else 1


def print_report(args: argparse.Namespace, facts: dict[str, str], runs: list[Run]) -> None:
    print(
        f"\nbench.ack: {args.rate:,.0f} status webhooks/s offered for {args.seconds:.0f} s, "
        f"{args.senders} sender processes; load {facts['load_before']} -> {facts['load_after']}"
    )
    cols = [
        "run",
        "acks/s",
        "p50_ms",
        "p99_ms",
        "max_ms",
        "non2xx",
        "stored",
        "acked_missing",
        "dups",
        "processed",
        "failed",
        "read",
        "drain_s",
        "cpu",
    ]
    print(" | ".join(cols))
    for n, r in enumerate(runs, 1):
        print(
            f"{n} | {r.acks_per_s:,.0f} | {r.p50_ms:.1f} | {r.p99_ms:.1f} | {r.max_ms:.1f} | "
            f"{r.non_2xx} | {r.stored:,} | {r.acked_not_stored} | {r.duplicates} | "
            f"{r.processed:,} | {r.failed} | {r.messages_read:,} | "
            f"{r.drain_s:.1f}{'' if r.drained else '+'} | {r.server_cpu_cores:.2f}"
        )
    for n, r in enumerate(runs, 1):
        print(f"run {n} group commits (ms) {r.group_commits}")
    med = statistics.median
    print(
        f"median | {med(r.acks_per_s for r in runs):,.0f} | {med(r.p50_ms for r in runs):.1f} | "
        f"{med(r.p99_ms for r in runs):.1f} | {med(r.max_ms for r in runs):.1f} | "
        f"{med(r.non_2xx for r in runs)} | | | | | | | {med(r.drain_s for r in runs):.1f} |"
    )
    p99 = med(r.p99_ms for r in runs)
    print(
        f"target: ack p99 <= {TARGET_P99_MS:.0f} ms, 0 non-2xx, nothing lost -> "
        f"{'met' if p99 <= TARGET_P99_MS and all(r.non_2xx == 0 and r.ok for r in runs) else 'MISSED'}"
    )


if __name__ == "__main__":
    sys.exit(main())
