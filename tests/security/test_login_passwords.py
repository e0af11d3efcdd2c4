"""Sign-in throttling per client address, equal timing for unknown emails, password reset
(admin link and CLI) and "change my password" (issue 15, item 10)."""

from __future__ import annotations

import asyncio
import re
import statistics
import subprocess
import time

import httpx
import pytest

from tests.conftest import TIDINGS, Owner, Server
from tests.security.test_sessions_tokens import PASSWORD, bearer, new_agent, sign_in, token_of
from tidings.web import routes


async def attempt(
    client: httpx.AsyncClient, email: str, password: str, address: str
) -> httpx.Response:
    """One sign-in from `address` (sent as X-Forwarded-For, which uvicorn honours from the
    loopback proxy address, as behind nginx on the same host)."""
    headers = {"X-Forwarded-For": address}
    page = await client.get("/login", headers=headers)
    token = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert token is not None
    return await client.post(
        "/login",
        data={"email": email, "password": password, "csrf": token.group(1)},
        headers=headers,
    )


async def test_sign_in_is_throttled_per_client_address(server: Server, owner: Owner) -> None:
    """Password spraying: one wrong password for many emails from one address."""
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        codes = [
            (await attempt(client, f"u{i}@example.com", "guess", "198.51.100.7")).status_code
            for i in range(40)
        ]
        assert set(codes[:10]) == {401}
        # After the burst (30) one attempt per 10 s gets through; on a slow runner an attempt
        # may catch a refilled token, so count the refusals instead of checking the last one.
        assert codes.count(429) >= 5, codes
        # Another address is not slowed, and the owner can still sign in from it.
        other = await attempt(client, "owner@example.com", "correct horse battery", "192.0.2.9")
        assert other.status_code == 303


async def test_unknown_emails_take_as_long_as_known_ones(server: Server, owner: Owner) -> None:
    """Without a dummy hash an unknown email answered ~70x faster, revealing who has an
    account. The margin is wide (timing under a loaded test runner); the old gap was not."""

    async def timed(email: str, address: str) -> float:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            page = await client.get("/login")
            token = re.search(r'name="csrf" value="([^"]+)"', page.text)
            assert token is not None
            start = time.perf_counter()
            resp = await client.post(
                "/login",
                data={"email": email, "password": "wrong", "csrf": token.group(1)},
                headers={"X-Forwarded-For": address},
            )
            elapsed = time.perf_counter() - start
            assert resp.status_code == 401
            return elapsed

    known, unknown = [], []
    for i in range(5):
        known.append(await timed("owner@example.com", f"203.0.113.{i}"))
        unknown.append(await timed(f"nobody{i}@example.com", f"203.0.113.{50 + i}"))
    ratio = statistics.median(unknown) / statistics.median(known)
    assert ratio > 0.3, (known, unknown)


async def test_admin_reset_link_sets_a_password_once(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    agent_id = await new_agent(api, "cleo@example.com")
    old = await sign_in(server, "cleo@example.com", PASSWORD)
    token = (await token_of(old))["token"]
    link = await api.post(f"/api/v1/admin/agents/{agent_id}/password_reset")
    assert link.status_code == 201, link.text
    url = link.json()["url"]
    assert url.startswith(server.url + "/reset-password?token=") and link.json()["expires_at"]
    async with httpx.AsyncClient(timeout=20) as browser:
        form = await browser.get(url)
        assert form.status_code == 200 and "cleo@example.com" in form.text
        reset_token = re.search(r'name="token" value="([^"]+)"', form.text)
        assert reset_token is not None
        mismatch = await browser.post(
            f"{server.url}/reset-password",
            data={
                "token": reset_token.group(1),
                "new_password": "new-password-3",
                "new_password_again": "other",
            },
        )
        assert mismatch.status_code == 422
        done = await browser.post(
            f"{server.url}/reset-password",
            data={
                "token": reset_token.group(1),
                "new_password": "new-password-3",
                "new_password_again": "new-password-3",
            },
        )
        assert done.status_code == 303
        # Used once: the link is gone, and so are the agent's sessions and tokens.
        assert (await browser.get(url)).status_code == 410
    assert (await old.get("/api/v1/me")).status_code == 401
    async with bearer(server, token) as script:
        assert (await script.get("/api/v1/me")).status_code == 401
    await old.aclose()
    await (await sign_in(server, "cleo@example.com", "new-password-3")).aclose()
    async with httpx.AsyncClient(base_url=server.url) as forged:
        assert (await forged.get("/reset-password", params={"token": "x.y.z"})).status_code == 410


async def test_cli_reset_password(server: Server, owner: Owner, api: httpx.AsyncClient) -> None:
    await new_agent(api, "dan@example.com")
    env = {
        "PATH": "/usr/bin:/bin",
        "TIDINGS_DATABASE_URL": server.settings.database_url,
        "TIDINGS_DATA_DIR": str(server.settings.data_dir),
        "TIDINGS_SECRET_KEY": server.settings.secret_key,
        "TIDINGS_PUBLIC_URL": server.url,
        "TIDINGS_SANDBOX": "0",
    }

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [TIDINGS, "reset-password", *args], env=env, capture_output=True, text=True, timeout=60
        )

    printed = await asyncio.to_thread(run, "--email", "dan@example.com")
    assert printed.returncode == 0, printed.stderr
    url = printed.stdout.split()[0]
    async with httpx.AsyncClient(timeout=20) as browser:
        assert (await browser.get(url)).status_code == 200
    unknown = await asyncio.to_thread(run, "--email", "nobody@example.com")
    assert unknown.returncode == 1 and "no agent" in unknown.stderr
    short = await asyncio.to_thread(run, "--email", "dan@example.com", "--password", "short")
    assert short.returncode == 1
    done = await asyncio.to_thread(
        run, "--email", "dan@example.com", "--password", "set-by-operator-4"
    )
    assert done.returncode == 0, done.stderr
    await (await sign_in(server, "dan@example.com", "set-by-operator-4")).aclose()


async def test_change_my_password_form(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    await new_agent(api, "eve@example.com")
    browser = await sign_in(server, "eve@example.com", PASSWORD)
    page = await browser.get("/profile")
    assert page.status_code == 200
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf is not None
    fields = {"new_password": "changed-pass-5", "new_password_again": "changed-pass-5"}
    forged = await browser.post("/profile/password", data={**fields, "current_password": PASSWORD})
    assert forged.status_code == 403
    wrong = await browser.post(
        "/profile/password",
        data={**fields, "current_password": "nope", "csrf": csrf.group(1)},
    )
    assert wrong.status_code == 422 and "current" in wrong.text
    ok = await browser.post(
        "/profile/password",
        data={**fields, "current_password": PASSWORD, "csrf": csrf.group(1)},
    )
    assert ok.status_code == 303
    assert (await browser.get("/api/v1/me")).status_code == 200
    await browser.aclose()
    await (await sign_in(server, "eve@example.com", "changed-pass-5")).aclose()


def test_the_per_email_failure_count_stays_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every email tried used to stay in the process's failure table for good (an attacker
    spraying new emails grew it without end): past windows go first, then the oldest."""
    monkeypatch.setattr(routes, "_failures", {})
    monkeypatch.setattr(routes, "THROTTLE_EMAILS", 50)
    for i in range(500):
        routes._record_failure(f"spray{i}@example.com")
        assert not routes._throttled(f"never-failed{i}@example.com")
    assert len(routes._failures) == 50
    # The newest entries are kept, and a throttled email still counts as throttled.
    for _ in range(routes.THROTTLE_MAX):
        routes._record_failure("target@example.com")
    assert routes._throttled("target@example.com")
    assert "spray499@example.com" in routes._failures
    assert len(routes._failures) <= 50
