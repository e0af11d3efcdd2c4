"""`tidings doctor`: check configuration, database, Redis and every channel, and say what to fix.

Each check prints one line: ok / warn / FAIL and a sentence. The exit code is non-zero when any
check fails, so it can gate a deployment.
"""

from __future__ import annotations

import asyncio
import ipaddress
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
from sqlalchemy import select, text

from tidings.channels.registry import get_adapter
from tidings.config import Settings, secret_key_problem
from tidings.runtime import Runtime, one_shot
from tidings.storage.models import Channel


@dataclass(frozen=True)
class Check:
    status: str  # ok | warn | fail
    name: str
    detail: str


async def _database(rt: Runtime) -> list[Check]:
    from alembic.script import ScriptDirectory

    from tidings.storage.db import alembic_config

    try:
        async with rt.db.read() as s:
            await s.execute(text("SELECT 1"))
            current = set(
                (await s.execute(text("SELECT version_num FROM alembic_version"))).scalars()
            )
    except Exception as exc:
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        hint = "; run `tidings migrate`" if "alembic_version" in reason else ""
        return [Check("fail", "database", f"cannot query the database: {reason}{hint}")]
    scripts = ScriptDirectory.from_config(alembic_config(rt.settings.database_url))
    heads = set(scripts.get_heads())
    # A revision another one `depends_on` leaves alembic_version once that one is applied
    # (0017_inbound_claim_order builds on 0016_inbound_lane): up to date is every head applied.
    applied = {r.revision for r in scripts.iterate_revisions(tuple(current), "base")}
    if not heads <= applied or not current <= heads:
        return [
            Check(
                "fail",
                "database",
                f"schema at {sorted(current)}, code expects {sorted(heads)}: run `tidings migrate`",
            )
        ]
    return [Check("ok", "database", f"{rt.db.dialect} reachable, schema at {sorted(heads)}")]


async def _inbound_lag(rt: Runtime) -> list[Check]:
    """How far behind inbound processing is, per lane (docs/operations.md)."""
    from tidings.ingest.lag import DOCTOR_WARN_SECONDS, measure

    try:
        lanes = await measure(rt.db)
    except Exception:
        return [Check("warn", "inbound lag", "not checked: the database is not ready (see above)")]
    parts = [f"{lag.lane} {lag.seconds:.1f} s ({lag.pending} waiting)" for lag in lanes.values()]
    late = [lag for lag in lanes.values() if lag.seconds > DOCTOR_WARN_SECONDS]
    if not late:
        return [Check("ok", "inbound lag", ", ".join(parts))]
    advice = (
        "; is a worker running (`tidings serve` or `tidings worker`)? "
        "see docs/operations.md, 'Inbound lag'"
    )
    return [Check("warn", "inbound lag", "behind: " + ", ".join(parts) + advice)]


async def _redis(settings: Settings) -> list[Check]:
    if not settings.redis_url:
        return [Check("ok", "redis", "not configured (fine for one process; needed for several)")]
    from redis.asyncio import Redis

    client = Redis.from_url(settings.redis_url, socket_timeout=3)
    try:
        await client.ping()
        return [Check("ok", "redis", "reachable")]
    except Exception as exc:
        return [Check("fail", "redis", f"cannot reach {settings.redis_url}: {type(exc).__name__}")]
    finally:
        await client.aclose()


def _loopback(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _sandbox(settings: Settings) -> list[Check]:
    """The sandbox injects customer messages and signs provider payloads: it is for a local
    trial, so on anything that answers beyond this machine it is a failure, not a warning."""
    if not settings.sandbox:
        return []
    public_host = urlsplit(settings.public_url).hostname
    if not _loopback(public_host):
        return [
            Check(
                "fail",
                "sandbox",
                f"TIDINGS_SANDBOX is on while TIDINGS_PUBLIC_URL ({settings.public_url}) is not "
                "this machine: the sandbox is for a local trial only; set TIDINGS_SANDBOX=0",
            )
        ]
    if not _loopback(settings.host):
        return [
            Check(
                "fail",
                "sandbox",
                f"TIDINGS_SANDBOX is on while serve listens on {settings.host}, beyond this "
                "machine: listen on 127.0.0.1 or set TIDINGS_SANDBOX=0",
            )
        ]
    return [Check("warn", "sandbox", "TIDINGS_SANDBOX is on: turn it off in production")]


def _settings(settings: Settings) -> list[Check]:
    checks = _sandbox(settings)
    if not settings.public_url.startswith("https://"):
        checks.append(
            Check(
                "warn",
                "public_url",
                f"{settings.public_url} is not HTTPS; providers require HTTPS webhooks",
            )
        )
    if problem := secret_key_problem(settings):
        checks.append(Check("fail", "secret_key", problem))
    return checks or [Check("ok", "settings", "production-ready settings")]


async def _channels(rt: Runtime, http: httpx.AsyncClient) -> list[Check]:
    checks = []
    try:
        async with rt.db.read() as s:
            rows = (await s.scalars(select(Channel).order_by(Channel.id))).all()
    except Exception:
        return [Check("warn", "channels", "not checked: the database is not ready (see above)")]
    for row in rows:
        name = f"channel {row.id} ({row.kind} {row.name!r})"
        if row.notice:
            # The provider's own word about the channel (e.g. a Messenger policy block).
            when = row.notice_at.isoformat(timespec="seconds") if row.notice_at else "?"
            level = "fail" if row.notice_severe else "warn"
            checks.append(Check(level, name, f"provider notice ({when}): {row.notice}"))
        try:
            info = rt.channels.build(row)
        except Exception as exc:
            checks.append(Check("fail", name, f"config does not decrypt or validate: {exc}"))
            continue
        probe: Any = getattr(get_adapter(row.kind), "check_credentials", None)
        if probe is None:
            checks.append(Check("ok", name, "config valid (no credential probe for this kind)"))
            continue
        try:
            problem = await probe(info.config, http)
        except Exception as exc:
            problem = f"probe failed: {type(exc).__name__}: {exc}"
        if problem:
            checks.append(Check("fail", name, problem))
            continue
        detail = "credentials accepted"
        summary: Any = getattr(get_adapter(row.kind), "health_summary", None)
        if summary is not None:
            # e.g. LINE's push quota left this month.
            try:
                detail += f"; {await summary(info.config, http)}"
            except Exception as exc:
                detail += f"; no summary ({type(exc).__name__})"
        checks.append(Check("ok", name, detail))
    return checks


async def _reachability(settings: Settings, http: httpx.AsyncClient) -> list[Check]:
    url = f"{settings.public_url}/healthz"
    try:
        resp = await http.get(url, timeout=5)
    except httpx.HTTPError as exc:
        return [
            Check(
                "warn",
                "webhooks",
                f"{url} did not answer ({type(exc).__name__}); "
                "is `tidings serve` running and reachable there?",
            )
        ]
    if resp.status_code != 200:
        return [Check("fail", "webhooks", f"{url} answered {resp.status_code}")]
    return [
        Check(
            "ok",
            "webhooks",
            f"{settings.public_url} answers; providers post to /webhooks/<kind>/<id>",
        )
    ]


async def _sandbox_answers_strangers(settings: Settings, http: httpx.AsyncClient) -> list[Check]:
    """Ask the running server, as an anonymous client would, for the sandbox's simulator state
    (a server of an older version, or one whose sandbox is open some other way, answers)."""
    url = f"{settings.public_url}/sandbox/whatsapp/_sim/accounts"
    try:
        resp = await http.get(url, timeout=5)
    except httpx.HTTPError:
        return []  # not running: `webhooks` says so
    if resp.status_code == 200:
        return [
            Check(
                "fail",
                "sandbox",
                f"{url} answers an anonymous request: the sandbox is open to anyone who can "
                "reach this server; set TIDINGS_SANDBOX=0 (or upgrade and restart)",
            )
        ]
    return []


async def run_checks(settings: Settings) -> list[Check]:
    async def checks(rt: Runtime) -> tuple[list[Check], ...]:
        async with httpx.AsyncClient(timeout=10) as http:
            return await asyncio.gather(
                _database(rt),
                _inbound_lag(rt),
                _redis(settings),
                _channels(rt, http),
                _reachability(settings, http),
                _sandbox_answers_strangers(settings, http),
            )

    results = await one_shot(settings, checks)
    return _settings(settings) + [c for group in results for c in group]


def main(settings: Settings) -> int:
    checks = asyncio.run(run_checks(settings))
    width = max(len(c.name) for c in checks)
    for c in checks:
        label = "FAIL" if c.status == "fail" else c.status
        print(f"{label:5} {c.name:<{width}}  {c.detail}")
    return 1 if any(c.status == "fail" for c in checks) else 0
