"""Malformed webhook bodies get a 4xx before any work, never a 5xx (issue #15, item 8).

Deeply nested JSON used to reach code that re-serialises or walks it (orjson refuses to dump
more than 254 levels; recursive walkers hit Python's recursion limit) and came back as a 500
with a traceback, unsigned to Vonage and signed to RBM. Every webhook kind gets deep arrays and
objects, unsigned; the kinds whose signature a test can compute also get them signed (a
signature does not make a malformed body acceptable). Nothing is stored from any of them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from tests.conftest import Owner, Server
from tidings import signing
from tidings.channels import google_common as google
from tidings.channels.line.webhook import signature as line_signature
from tidings.simulators.sandbox import create_demo_channels
from tidings.storage.models import InboundEvent


def deep(depth: int, kind: str) -> bytes:
    if kind == "array":
        return b"[" * depth + b"]" * depth
    if kind == "object":
        return b'{"a":' * depth + b"1" + b"}" * depth
    # An envelope that looks right at the top, with a deep value inside it.
    return b'{"entry":[{"messaging":' + b"[" * depth + b"]" * depth + b"}]}"


DEEP = [deep(d, k) for d in (300, 1100, 20_000) for k in ("array", "object", "wrapped")]
# Sent unsigned only: a signed body that cannot be understood is kept as a failed, replayable
# event and acknowledged (api/webhooks.py), which is not what this test is about.
BROKEN = [
    b"\xff\xfe{not json",
    b'{"a":"\xed\xa0\x80"}',  # a lone surrogate as raw UTF-8
    b"<xml>" + b"<a>" * 5000 + b"</a>" * 5000 + b"</xml>",
]


def signed_headers(kind: str, config: Any, body: bytes) -> dict[str, str] | None:
    """Headers that sign `body` for `kind` (None where this test does not sign)."""
    if kind in ("whatsapp", "messenger", "instagram"):
        mac = hmac.new(config.app_secret.encode(), body, hashlib.sha256).hexdigest()
        return {"X-Hub-Signature-256": f"sha256={mac}", "Content-Type": "application/json"}
    if kind == "telegram":
        return {"X-Telegram-Bot-Api-Secret-Token": config.secret_token}
    if kind == "viber":
        mac = hmac.new(config.auth_token.encode(), body, hashlib.sha256).hexdigest()
        return {"X-Viber-Content-Signature": mac, "Content-Type": "application/json"}
    if kind == "api":
        return {**signing.sign_headers(config.secret, body), "Content-Type": "application/json"}
    if kind == "line":
        return {"x-line-signature": line_signature(config.channel_secret, body)}
    return None


def rbm_envelope(client_token: str, data: bytes) -> tuple[bytes, dict[str, str]]:
    envelope = (
        b'{"message":{"data":"' + base64.b64encode(data) + b'","messageId":"1"},"subscription":"s"}'
    )
    return envelope, {"X-Goog-Signature": google.signature(client_token, data)}


async def stored(server: Server) -> int:
    async with server.runtime.db.read() as s:
        return int(await s.scalar(select(func.count()).select_from(InboundEvent)) or 0)


@pytest.fixture
async def channels(server: Server, owner: Owner) -> list[dict[str, Any]]:
    made: list[dict[str, Any]] = await create_demo_channels(
        server.runtime, owner.workspace_id, owner.agent_id
    )
    return made


async def test_deep_and_broken_bodies_get_4xx_on_every_kind(
    server: Server, channels: list[dict[str, Any]]
) -> None:
    assert len({c["kind"] for c in channels}) >= 8, channels
    failures: list[tuple[str, str, int, str]] = []
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
        for channel in channels:
            kind, url = channel["kind"], f"/webhooks/{channel['kind']}/{channel['id']}"
            info = await server.runtime.channels.get(channel["id"])
            assert info is not None
            attempts: list[tuple[str, bytes, dict[str, str]]] = []
            for body in BROKEN:
                attempts.append(("unsigned", body, {"Content-Type": "application/json"}))
            for body in DEEP:
                attempts.append(("unsigned", body, {"Content-Type": "application/json"}))
                headers = signed_headers(kind, info.config, body)
                if headers is not None:
                    attempts.append(("signed", body, headers))
                if kind == "rbm":
                    attempts.append(
                        ("signed", *rbm_envelope(info.config.webhook_client_token, body))
                    )
            for how, body, headers in attempts:
                resp = await http.post(url, content=body, headers=headers)
                if not 400 <= resp.status_code < 500:
                    failures.append((kind, how, resp.status_code, repr(body[:40])))
    assert failures == []
    assert await stored(server) == 0
