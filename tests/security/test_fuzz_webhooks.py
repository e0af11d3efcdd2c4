"""Property-based fuzzing of every webhook endpoint: whatever arrives, no 5xx, and nothing is
stored from a request whose signature does not check out."""

from __future__ import annotations

import sqlite3

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.security.conftest import LiveServer

HEADER_NAMES = st.sampled_from(
    [
        "X-Hub-Signature-256",
        "X-Twilio-Signature",
        "X-Telegram-Bot-Api-Secret-Token",
        "x-line-signature",
        "X-Goog-Signature",
        "X-Tidings-Signature",
        "X-Tidings-Timestamp",
        "Content-Type",
        "Content-Length-Ish",
    ]
)
# Header values as a client can send them (h11 refuses leading or trailing blanks).
HEADER_VALUES = st.text(
    alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=80
).map(str.strip)
BODIES = st.one_of(
    st.binary(max_size=2048),
    st.text(max_size=512).map(str.encode),
    st.recursive(
        st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=20)),
        lambda inner: st.one_of(
            st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)
        ),
        max_leaves=20,
    ).map(lambda v: httpx.Request("POST", "http://x", json=v).content),
    st.sampled_from(
        [
            b'{"object":"whatsapp_business_account","entry":[{"changes":[{"value":{"messages":[{"id":"x"}]}}]}]}',
            b"<xml><ToUserName>a</ToUserName><MsgType>text</MsgType></xml>",
            b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><xml>&a;</xml>',
            b"MessageSid=SM1&From=%2B15551234567&Body=hi",
            b'{"update_id":1,"message":{"chat":{"id":1},"text":"hi"}}',
        ]
    ),
)
QUERIES = st.dictionaries(
    st.sampled_from(
        [
            "hub.mode",
            "hub.verify_token",
            "hub.challenge",
            "signature",
            "timestamp",
            "nonce",
            "echostr",
            "msg_signature",
            "encrypt_type",
        ]
    ),
    HEADER_VALUES,
    max_size=5,
)


def stored_events(server: LiveServer) -> int:
    db = sqlite3.connect(server.database_url.split(":///", 1)[1])
    try:
        return int(db.execute("SELECT count(*) FROM inbound_event").fetchone()[0])
    finally:
        db.close()


def test_no_5xx_and_nothing_stored_without_a_valid_signature(live_server: LiveServer) -> None:
    targets = [(str(c["kind"]), int(str(c["id"]))) for c in live_server.channels]
    assert len(targets) >= 5, targets
    client = httpx.Client(base_url=live_server.url, timeout=30)
    before = stored_events(live_server)
    seen: set[int] = set()

    @settings(
        max_examples=250, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True
    )
    @given(
        target=st.sampled_from(targets),
        method=st.sampled_from(["POST", "POST", "GET"]),
        headers=st.dictionaries(HEADER_NAMES, HEADER_VALUES, max_size=4),
        body=BODIES,
        query=QUERIES,
    )
    def probe(
        target: tuple[str, int],
        method: str,
        headers: dict[str, str],
        body: bytes,
        query: dict[str, str],
    ) -> None:
        kind, channel_id = target
        resp = client.request(
            method,
            f"/webhooks/{kind}/{channel_id}",
            params=query,
            headers=headers,
            content=body if method == "POST" else None,
        )
        seen.add(resp.status_code)
        assert resp.status_code < 500, (
            kind,
            method,
            headers,
            body[:200],
            resp.status_code,
            resp.text[:300],
        )

    probe()
    # Unknown channels and kinds too.
    for path in (
        "/webhooks/whatsapp/999999",
        "/webhooks/nope/1",
        "/webhooks/whatsapp/abc",
        "/webhooks/whatsapp/-1",
    ):
        assert client.post(path, content=b"{}").status_code == 404
    client.close()
    assert stored_events(live_server) == before
    assert seen & {401, 403}, seen  # the fuzzer really reached the signature checks
