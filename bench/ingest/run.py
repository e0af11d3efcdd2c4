"""Ingest benchmark: signed single-message WhatsApp webhooks into Tidings vs a bare Starlette app.

    .venv/bin/python -m bench.ingest.run [--seconds 12] [--warmup 3] [--connections 64] [--runs 3]

One invocation starts both servers (each its own process, served the same way), drives each in
turn with wrk at the same concurrency, and prints req/s, p50/p99 and the ratio Tidings/baseline,
with medians over the runs. Afterwards it checks durability: every request Tidings acknowledged
with a 2xx is stored exactly once, and nothing was stored that was never sent; then it waits for
the in-process ingest worker to turn the backlog into messages and reports how long that took.
Loopback only; everything lives in a temporary directory that is removed at the end.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import math
import os
import secrets
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bench.common import (
    WrkResult,
    child,
    cpu_seconds,
    free_port,
    machine_facts,
    median,
    run_wrk,
    wait_http,
    whatsapp_envelope,
)

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
LUA = HERE / "signed_posts.lua"
TARGET_RATIO = 0.55
APP_SECRET = "bench-app-secret-" + secrets.token_hex(8)
PHONE_NUMBER_ID = "123"
CUSTOMERS = 1000  # distinct senders, so the worker creates contacts and conversations too


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# Request bodies


def whatsapp_body(wamid: str, customer: int, ts: int, text: str) -> bytes:
    """One text message in Meta's envelope (docs/channels/whatsapp.md#inbound-payloads),
    serialised as Meta does: compact, ASCII-escaped JSON. The signature is computed over exactly
    these bytes."""
    wa_id = f"1650555{customer:04d}"
    contacts = [{"profile": {"name": f"Customer {customer:04d}"}, "wa_id": wa_id}]
    message = {
        "from": wa_id,
        "id": wamid,
        "timestamp": str(ts),
        "type": "text",
        "text": {"body": text},
    }
    payload = whatsapp_envelope(PHONE_NUMBER_ID, contacts=contacts, messages=[message])
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=True).encode()


@dataclass
class BodySet:
    """Per-thread files of signed bodies, and the message ids in each, in file order."""

    prefix: str
    ids: list[list[str]]

    def sent_ids(self, sent_per_thread: Sequence[int]) -> set[str]:
        out: set[str] = set()
        for ids, sent in zip(self.ids, sent_per_thread, strict=True):
            out.update(ids[:sent])
        return out

    def remove(self) -> None:
        for t in range(len(self.ids)):
            Path(f"{self.prefix}{t}").unlink(missing_ok=True)


def write_bodies(directory: Path, tag: str, threads: int, per_thread: int) -> BodySet:
    """`per_thread` signed bodies for each wrk thread, every message id unique (tag + counter)."""
    key = APP_SECRET.encode()
    ts = int(time.time())
    prefix = str(directory / f"{tag}.bodies.")
    all_ids: list[list[str]] = []
    for t in range(threads):
        ids: list[str] = []
        with open(f"{prefix}{t}", "wb") as f:
            for i in range(per_thread):
                # Real wamids are "wamid." + base64; ours encode where they came from.
                wamid = "wamid." + base64.b64encode(f"{tag}:{t}:{i:09d}".encode()).decode()
                n = t * per_thread + i
                body = whatsapp_body(wamid, n % CUSTOMERS, ts, f"Does it come in blue? #{n}")
                sig = hmac.new(key, body, hashlib.sha256).hexdigest().encode()
                f.write(sig + b"\t" + body + b"\n")
                ids.append(wamid)
        all_ids.append(ids)
    return BodySet(prefix, all_ids)


# --------------------------------------------------------------------------------------------
# Tidings, as an operator would run it


def tidings_env(data_dir: Path, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIDINGS_")}
    env.update(
        TIDINGS_DATA_DIR=str(data_dir),
        TIDINGS_DATABASE_URL=f"sqlite+aiosqlite:///{data_dir / 'tidings.db'}",
        TIDINGS_PORT=str(port),
        TIDINGS_PUBLIC_URL=f"http://127.0.0.1:{port}",
        TIDINGS_SANDBOX="0",
        TIDINGS_LOG_LEVEL="warning",
    )
    return env


def tidings_cli(env: dict[str, str], *args: str) -> str:
    exe = Path(sys.executable).with_name("tidings")
    proc = subprocess.run(
        [str(exe), *args], env=env, capture_output=True, text=True, check=False, timeout=120
    )
    if proc.returncode != 0:
        raise RuntimeError(f"tidings {args[0]} failed: {proc.stderr.strip()}")
    return proc.stdout


def create_channel(base_url: str, token: str) -> tuple[int, str]:
    body = {
        "kind": "whatsapp",
        "name": "bench",
        "config": {
            "phone_number_id": PHONE_NUMBER_ID,
            "access_token": "x",
            "app_secret": APP_SECRET,
            "verify_token": "v",
            # Nothing is sent during the benchmark; a closed local port, never the Internet.
            "api_base_url": "http://127.0.0.1:9",
        },
    }
    resp = httpx.post(
        f"{base_url}/api/v1/channels",
        json=body,
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    resp.raise_for_status()
    data = resp.json()
    return int(data["id"]), str(data["webhook_url"])


# --------------------------------------------------------------------------------------------
# Durability check and backlog drain, straight from the SQLite file


def query(db: Path, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
    # A fresh autocommit connection per query: no read transaction is held open, so the
    # server's WAL checkpoints are never held back by the benchmark.
    conn = sqlite3.connect(db, timeout=30, isolation_level=None)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def count(db: Path, sql: str, params: Sequence[object] = ()) -> int:
    return int(query(db, sql, params)[0][0])


@dataclass
class Durability:
    acknowledged: int
    sent: int
    stored: int
    stored_not_sent: int
    acked_missing: int  # acknowledged minus stored, when positive: must be 0
    duplicate_events: int
    duplicate_messages: int
    wraps: int

    @property
    def ok(self) -> bool:
        return (
            self.acked_missing == 0
            and self.stored_not_sent == 0
            and self.duplicate_events == 0
            and self.duplicate_messages == 0
            and self.wraps == 0
        )


def settle(db: Path, channel_id: int, quiet: float = 3.0, limit: float = 30.0) -> None:
    """Wait until the requests still in flight when wrk stopped have been committed (or
    refused): the stored count stays the same for `quiet` seconds."""
    sql = "SELECT count(*) FROM inbound_event WHERE channel_id = ?"
    deadline = time.monotonic() + limit
    last, since = count(db, sql, (channel_id,)), time.monotonic()
    while time.monotonic() < deadline and time.monotonic() - since < quiet:
        time.sleep(0.25)
        now = count(db, sql, (channel_id,))
        if now != last:
            last, since = now, time.monotonic()


def check_durability(db: Path, channel_id: int, bodies: BodySet, result: WrkResult) -> Durability:
    """Acknowledged ⊆ stored ⊆ sent, by count and by id.

    wrk cannot tell which request a response belongs to, so "acknowledged" is a count: every
    2xx must have a stored row (stored ≥ acked), and every stored row must be a request that was
    actually sent. Requests in flight when wrk stopped may be stored without being counted."""
    settle(db, channel_id)
    sent = bodies.sent_ids(result.sent_per_thread)
    generated = {i for ids in bodies.ids for i in ids}
    keys = {
        str(k)[len("msg:") :]
        for (k,) in query(
            db, "SELECT event_key FROM inbound_event WHERE channel_id = ?", (channel_id,)
        )
    }
    stored = keys & generated
    dup_events = count(
        db,
        "SELECT count(*) FROM (SELECT event_key FROM inbound_event WHERE channel_id = ?"
        " GROUP BY event_key HAVING count(*) > 1)",
        (channel_id,),
    )
    dup_messages = count(
        db,
        "SELECT count(*) FROM (SELECT provider_message_id FROM message WHERE channel_id = ?"
        " GROUP BY provider_message_id HAVING count(*) > 1)",
        (channel_id,),
    )
    return Durability(
        acknowledged=result.ok,
        sent=len(sent),
        stored=len(stored),
        stored_not_sent=len(stored - sent),
        acked_missing=max(0, result.ok - len(stored)),
        duplicate_events=dup_events,
        duplicate_messages=dup_messages,
        wraps=result.wraps,
    )


@dataclass
class Drain:
    backlog: int  # events still pending when the load stopped
    seconds: float
    drained: bool
    failed_events: int
    messages: int  # message rows for this phase's ids once drained

    @property
    def per_s(self) -> float:
        """Events processed per second while draining; NaN if it did not finish or had nothing."""
        if not self.drained or self.backlog == 0 or self.seconds <= 0:
            return float("nan")
        return self.backlog / self.seconds


def wait_drain(db: Path, channel_id: int, ids: set[str], timeout: float) -> Drain:
    def pending() -> int:
        return count(
            db,
            "SELECT count(*) FROM inbound_event WHERE channel_id = ? AND state = 'pending'",
            (channel_id,),
        )

    start = time.monotonic()
    backlog = left = pending()
    while left and time.monotonic() - start < timeout:
        time.sleep(0.25)
        left = pending()
    seconds = time.monotonic() - start
    failed = count(
        db,
        "SELECT count(*) FROM inbound_event WHERE channel_id = ? AND state = 'failed'",
        (channel_id,),
    )
    provider_ids = {
        str(m)
        for (m,) in query(
            db,
            "SELECT provider_message_id FROM message WHERE channel_id = ? AND direction = 'in'",
            (channel_id,),
        )
    }
    return Drain(
        backlog=backlog,
        seconds=seconds,
        drained=left == 0,
        failed_events=failed,
        messages=len(provider_ids & ids),
    )


# --------------------------------------------------------------------------------------------
# The runs


@dataclass
class Figures:
    rps: float
    ok_rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    non_2xx: int
    socket_errors: int
    server_cpu: float  # share of one core the server process used during the run (1.0 = one)
    cpu_us_per_request: float

    @classmethod
    def of(cls, r: WrkResult, cpu_s: float) -> Figures:
        return cls(
            r.rps,
            r.ok_rps,
            r.p50_ms,
            r.p99_ms,
            r.requests,
            r.non_2xx,
            r.socket_errors,
            cpu_s / r.duration_s,
            cpu_s / max(1, r.requests) * 1e6,
        )


@dataclass
class Run:
    index: int
    baseline: Figures
    tidings: Figures
    durability: Durability
    drain: Drain
    warmup_durability_ok: bool

    @property
    def ratio(self) -> float:
        return self.tidings.rps / self.baseline.rps


@dataclass
class Report:
    facts: dict[str, str]
    command: str
    seconds: float
    warmup: float
    connections: int
    threads: int
    runs: list[Run] = field(default_factory=list)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=12.0, help="measured seconds per run")
    parser.add_argument("--warmup", type=float, default=3.0, help="warm-up seconds per run")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (default 1)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--max-rate",
        type=int,
        default=10_000,
        help="req/s Tidings is assumed never to exceed; sizes the unique-body files",
    )
    parser.add_argument("--drain-timeout", type=float, default=300.0)
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    parser.add_argument(
        "--profile",
        type=Path,
        help="record Tidings with py-spy (pip install py-spy) during each measured run into "
        "this folder: collapsed stacks, one file per run",
    )
    parser.add_argument(
        "--tidings-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment for the Tidings server, for diagnosis "
        "(e.g. TIDINGS_RUN_WORKERS=0 to measure the webhook path without the in-process worker)",
    )
    args = parser.parse_args(argv)
    if not 1 <= args.seconds <= 120 or not 0 <= args.warmup <= 60:
        parser.error("--seconds must be within 1..120 and --warmup within 0..60")
    if shutil.which("wrk") is None:
        parser.error("wrk is not installed (Debian: apt-get install wrk; or scripts/services)")

    report = Report(
        facts=machine_facts(),
        command="python -m bench.ingest.run " + " ".join(argv or sys.argv[1:]),
        seconds=args.seconds,
        warmup=args.warmup,
        connections=args.connections,
        threads=args.threads,
    )
    with ExitStack() as stack:
        tmp = Path(tempfile.mkdtemp(prefix="tidings-bench-"))  # on disk: fsync is real
        stack.callback(shutil.rmtree, tmp, ignore_errors=True)
        # Runs after the servers have stopped (the stack unwinds in reverse), before the rmtree.
        stack.callback(show_log, tmp / "tidings.log")
        shm = Path("/dev/shm")
        # The request bodies go to RAM so writing them never competes with the database's fsyncs.
        body_dir = Path(tempfile.mkdtemp(prefix="tidings-bench-", dir=shm if shm.is_dir() else tmp))
        stack.callback(shutil.rmtree, body_dir, ignore_errors=True)
        data_dir = tmp / "data"
        db_path = data_dir / "tidings.db"

        t_port, b_port = free_port(), free_port()
        env = tidings_env(data_dir, t_port)
        env.update(item.split("=", 1) for item in args.tidings_env)
        tidings_cli(env, "migrate")
        boot = json.loads(
            tidings_cli(env, "bootstrap", "--email", "bench@example.com", "--password", "x" * 16)
        )
        tidings = stack.enter_context(
            child(
                [str(Path(sys.executable).with_name("tidings")), "serve"],
                env=env,
                log=tmp / "tidings.log",
            )
        )
        baseline = stack.enter_context(
            child(
                [sys.executable, "-m", "bench.ingest.baseline", "--port", str(b_port)],
                env=os.environ,
                log=tmp / "baseline.log",
                cwd=ROOT,
            )
        )
        wait_http(f"http://127.0.0.1:{t_port}/api/v1/openapi.json", proc=tidings)
        wait_http(f"http://127.0.0.1:{b_port}/", proc=baseline)
        channel_id, webhook_url = create_channel(
            f"http://127.0.0.1:{t_port}", str(boot["api_token"])
        )
        baseline_url = f"http://127.0.0.1:{b_port}/webhooks/whatsapp/{channel_id}"
        log(f"tidings pid {tidings.pid} at {webhook_url}; baseline pid {baseline.pid}")

        # The baseline reads the same kind of bodies; it does not care whether ids repeat.
        base_bodies = write_bodies(body_dir, "baseline", args.threads, 20_000)

        def wrk(url: str, bodies: BodySet, seconds: float, pid: int) -> tuple[WrkResult, float]:
            """One wrk run and the CPU seconds the server `pid` spent meanwhile."""
            cpu = cpu_seconds(pid)
            result = run_wrk(
                url,
                script=LUA,
                script_args=[bodies.prefix],
                seconds=seconds,
                connections=args.connections,
                threads=args.threads,
            )
            return result, cpu_seconds(pid) - cpu

        def unique_bodies(tag: str, seconds: float) -> BodySet:
            per_thread = int(args.max_rate * (seconds + 1) / args.threads) + 1_000
            return write_bodies(body_dir, tag, args.threads, per_thread)

        for i in range(1, args.runs + 1):
            if args.warmup:
                wrk(baseline_url, base_bodies, args.warmup, baseline.pid)
            b, b_cpu = wrk(baseline_url, base_bodies, args.seconds, baseline.pid)
            log(
                f"run {i}: baseline {b.rps:,.0f} req/s p50 {b.p50_ms:.1f} ms p99 {b.p99_ms:.1f} ms"
                f" cpu {b_cpu / b.duration_s:.2f} core, {b_cpu / b.requests * 1e6:.0f} us/req"
            )

            warm_ok = True
            if args.warmup:
                warm = unique_bodies(f"r{i}w", args.warmup)
                w, _ = wrk(webhook_url, warm, args.warmup, tidings.pid)
                warm_ok = check_durability(db_path, channel_id, warm, w).ok
                # Start every measured run from an empty queue.
                wait_drain(db_path, channel_id, set(), args.drain_timeout)
                warm.remove()
            bodies = unique_bodies(f"r{i}m", args.seconds)
            spy = start_profile(args.profile, tidings.pid, i, args.seconds)
            t, t_cpu = wrk(webhook_url, bodies, args.seconds, tidings.pid)
            if spy is not None:
                spy.wait(timeout=60)
            log(
                f"run {i}: tidings {t.rps:,.0f} req/s p50 {t.p50_ms:.1f} ms p99 {t.p99_ms:.1f} ms"
                f" cpu {t_cpu / t.duration_s:.2f} core, {t_cpu / t.requests * 1e6:.0f} us/req"
            )
            durability = check_durability(db_path, channel_id, bodies, t)
            sent = bodies.sent_ids(t.sent_per_thread)
            drain = wait_drain(db_path, channel_id, sent, args.drain_timeout)
            bodies.remove()
            run = Run(i, Figures.of(b, b_cpu), Figures.of(t, t_cpu), durability, drain, warm_ok)
            report.runs.append(run)
            log(
                f"run {i}: ratio {run.ratio:.2f}; acked {durability.acknowledged:,}, stored "
                f"{durability.stored:,}, durable {'yes' if durability.ok else 'NO'}; backlog "
                f"{drain.backlog:,} drained in {drain.seconds:.1f}s"
            )

        if tidings.poll() is not None:
            log(f"tidings exited early with {tidings.returncode}")

    print_report(report)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report_json(report), indent=2))
    all_durable = all(r.durability.ok and r.warmup_durability_ok for r in report.runs)
    return 0 if all_durable else 1


def show_log(path: Path) -> None:
    text = path.read_text(errors="replace").strip() if path.exists() else ""
    if text:
        log("tidings log (warnings and errors), last lines:\n" + text[-4000:])


def start_profile(
    folder: Path | None, pid: int, run: int, seconds: float
) -> subprocess.Popen[bytes] | None:
    if folder is None:
        return None
    spy = Path(sys.executable).with_name("py-spy")
    if not spy.exists():
        sys.exit("--profile needs py-spy in the venv: .venv/bin/pip install py-spy")
    folder.mkdir(parents=True, exist_ok=True)
    argv = [str(spy), "record", "--pid", str(pid), "--duration", str(max(1, round(seconds)))]
    argv += ["--format", "raw", "--nonblocking", "-o", str(folder / f"tidings-run{run}.txt")]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def report_json(report: Report) -> dict[str, object]:
    out = asdict(report)
    out["at"] = datetime.now(UTC).isoformat(timespec="seconds")
    out["median"] = medians(report)
    return out


def medians(report: Report) -> dict[str, float]:
    runs = report.runs
    return {
        "baseline_rps": median([r.baseline.rps for r in runs]),
        "baseline_p50_ms": median([r.baseline.p50_ms for r in runs]),
        "baseline_p99_ms": median([r.baseline.p99_ms for r in runs]),
        "tidings_rps": median([r.tidings.rps for r in runs]),
        "tidings_p50_ms": median([r.tidings.p50_ms for r in runs]),
        "tidings_p99_ms": median([r.tidings.p99_ms for r in runs]),
        "ratio": median([r.ratio for r in runs]),
        "drain_per_s": median([r.drain.per_s for r in runs if not math.isnan(r.drain.per_s)]),
    }


def _num(x: float) -> str:
    return "-" if math.isnan(x) else f"{x:,.0f}"


def print_report(report: Report) -> None:
    f = report.facts
    print(
        f"\nIngest benchmark: {f['nproc']} CPU ({f['cpu']}), Python {f['python']}, {f['wrk']}; "
        f"{report.connections} connections, {report.threads} wrk thread(s), "
        f"{report.warmup:g}s warm-up + {report.seconds:g}s per run\n"
    )
    head = (
        f"{'run':>4} | {'baseline req/s':>14} {'p50 ms':>7} {'p99 ms':>7} | "
        f"{'tidings req/s':>13} {'p50 ms':>7} {'p99 ms':>7} | {'ratio':>5} | "
        f"{'acked':>7} {'stored':>7} {'dups':>4} {'non2xx':>6} | {'backlog':>7} {'drain/s':>7}"
    )
    print(head)
    print("-" * len(head))
    for r in report.runs:
        b, t, d, dr = r.baseline, r.tidings, r.durability, r.drain
        dups = d.duplicate_events + d.duplicate_messages
        print(
            f"{r.index:>4} | {b.rps:>14,.0f} {b.p50_ms:>7.1f} {b.p99_ms:>7.1f} | "
            f"{t.rps:>13,.0f} {t.p50_ms:>7.1f} {t.p99_ms:>7.1f} | {r.ratio:>5.2f} | "
            f"{d.acknowledged:>7,} {d.stored:>7,} {dups:>4} {t.non_2xx + t.socket_errors:>6} | "
            f"{dr.backlog:>7,} {_num(dr.per_s):>7}"
        )
    m = medians(report)
    print("-" * len(head))
    print(
        f"{'med':>4} | {m['baseline_rps']:>14,.0f} {m['baseline_p50_ms']:>7.1f} "
        f"{m['baseline_p99_ms']:>7.1f} | {m['tidings_rps']:>13,.0f} {m['tidings_p50_ms']:>7.1f} "
        f"{m['tidings_p99_ms']:>7.1f} | {m['ratio']:>5.2f} |"
    )
    verdict = "meets" if m["ratio"] >= TARGET_RATIO else "BELOW"
    print(f"\nratio (median) {m['ratio']:.2f} {verdict} the target {TARGET_RATIO}")
    for r in report.runs:
        d, dr = r.durability, r.drain
        print(
            f"run {r.index}: {d.sent:,} sent, {d.acknowledged:,} acknowledged, {d.stored:,} stored "
            f"({d.sent - d.stored:,} sent but not stored), "
            f"{d.stored_not_sent} stored unsent, {d.acked_missing} acked but missing, "
            f"{d.duplicate_events}+{d.duplicate_messages} duplicates, {d.wraps} id wraps, "
            f"warm-up {'ok' if r.warmup_durability_ok else 'NOT OK'} -> "
            f"{'DURABLE' if d.ok else 'NOT DURABLE'}; worker: {dr.backlog:,} pending at stop, "
            f"{'drained' if dr.drained else 'NOT drained'} in {dr.seconds:.1f}s "
            f"({_num(dr.per_s)}/s), {dr.messages:,} messages, {dr.failed_events} failed events"
        )


if __name__ == "__main__":
    sys.exit(main())
