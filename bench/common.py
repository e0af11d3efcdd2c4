"""Helpers shared by benchmarks: free ports, child servers, wrk runs and their figures."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

# wrk's Lua `done()` prints one line starting with this marker, followed by JSON.
WRK_MARKER = "BENCH_JSON "


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout: float = 30.0, proc: subprocess.Popen[bytes] | None = None) -> None:
    """Wait until `url` answers at all (any HTTP status), or fail loudly."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with code {proc.returncode} before answering")
        try:
            httpx.get(url, timeout=1.0)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f}s")


@contextlib.contextmanager
def child(
    argv: Sequence[str], *, env: Mapping[str, str], log: Path, cwd: Path | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """A child process whose output goes to `log`; stopped (TERM, then KILL) on exit."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            list(argv), env=dict(env), cwd=cwd, stdout=out, stderr=subprocess.STDOUT
        )
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads) so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_facts() -> dict[str, str]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    wrk_version = ""
    wrk = shutil.which("wrk")
    if wrk:
        out = subprocess.run([wrk, "--version"], capture_output=True, text=True, check=False)
        wrk_version = (out.stdout or out.stderr).splitlines()[0].split(" [")[0].strip()
    return {
        "nproc": str(os.cpu_count()),
        "cpu": model or platform.processor(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "wrk": wrk_version,
        "load_before": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


@dataclass(frozen=True)
class WrkResult:
    """One wrk run, from its own summary and our Lua counters."""

    duration_s: float
    requests: int  # responses completed (wrk's count)
    ok: int  # 2xx responses counted by the Lua script: the acknowledged requests
    non_2xx: int
    socket_errors: int  # connect + read + write + timeout
    p50_ms: float
    p99_ms: float
    sent_per_thread: list[int]  # request() calls per wrk thread: how far each body file was read
    wraps: int  # times a body file ran out and started over (ids repeat after that)
    requests_per_s_text: float  # wrk's own "Requests/sec:" line, as a cross-check

    @property
    def rps(self) -> float:
        return self.requests / self.duration_s

    @property
    def ok_rps(self) -> float:
        return self.ok / self.duration_s


def run_wrk(
    url: str,
    *,
    script: Path,
    script_args: Sequence[str],
    seconds: float,
    connections: int,
    threads: int,
    timeout_s: float = 10.0,
) -> WrkResult:
    wrk = shutil.which("wrk")
    if wrk is None:
        sys.exit("wrk is not installed (Debian: apt-get install wrk; or scripts/services install)")
    argv = [
        wrk,
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        f"--timeout={timeout_s:g}s",
        "--latency",
        "-s",
        str(script),
        url,
        "--",
        *script_args,
    ]
    proc = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=seconds + 60)
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {proc.stderr.strip()}")
    data: dict[str, object] | None = None
    rps_text = 0.0
    for line in proc.stdout.splitlines():
        if line.startswith(WRK_MARKER):
            data = json.loads(line[len(WRK_MARKER) :])
        elif line.startswith("Requests/sec:"):
            rps_text = float(line.split(":", 1)[1])
    if data is None:
        raise RuntimeError(f"wrk printed no {WRK_MARKER.strip()} line:\n{proc.stdout}")
    errors = data["errors"]
    assert isinstance(errors, dict)
    sent = data["sent"]
    assert isinstance(sent, list)
    return WrkResult(
        duration_s=float(data["duration_us"]) / 1e6,  # type: ignore[arg-type]
        requests=int(data["requests"]),  # type: ignore[call-overload]
        ok=int(data["ok"]),  # type: ignore[call-overload]
        non_2xx=int(data["non2xx"]),  # type: ignore[call-overload]
        socket_errors=sum(int(errors[k]) for k in ("connect", "read", "write", "timeout")),
        p50_ms=float(data["p50_us"]) / 1e3,  # type: ignore[arg-type]
        p99_ms=float(data["p99_us"]) / 1e3,  # type: ignore[arg-type]
        sent_per_thread=[int(x) for x in sent],
        wraps=int(data["wraps"]),  # type: ignore[call-overload]
        requests_per_s_text=rps_text,
    )


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def whatsapp_envelope(phone_number_id: str, **value: Any) -> dict[str, Any]:
    """A Cloud API `messages` webhook around `value` (statuses, or contacts and messages), in
    the shape Meta sends (docs/channels/whatsapp.md#inbound-payloads). Serialising is the
    caller's: the signature is computed over exactly the bytes it posts."""
    metadata = {"display_phone_number": "15550783881", "phone_number_id": phone_number_id}
    change = {"messaging_product": "whatsapp", "metadata": metadata, **value}
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": "102290129340398", "changes": [{"field": "messages", "value": change}]}],
    }
