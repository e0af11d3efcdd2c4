"""RBM API calls over an injected httpx client: agent messages, agent events (read, typing)
and the capability check (docs/channels/rbm.md#sending-and-agent-events,
docs/channels/rbm.md#capability-check)."""

from __future__ import annotations

import time
import uuid
from typing import Any
from urllib.parse import quote

import httpx

from tidings.channels import google_common as google
from tidings.channels.base import OutboundMessage, Permanent, SendOutcome, Sent
from tidings.channels.rbm.config import RbmConfig

SCOPE = "https://www.googleapis.com/auth/rcsbusinessmessaging"
PRODUCT = "RCS Business Messaging"
NOT_RCS = (
    "This number cannot receive RCS messages: RCS is off or unsupported on the phone, the "
    "carrier has not launched this agent, or the agent is not launched for non-testers."
)
# How long a successful capability check is trusted (seconds).
CAPABLE_TTL = 600.0
_capable_until: dict[tuple[str, str, str], float] = {}
# An agent-assigned id, derived from ours: a retried send reuses it and Google ignores the
# duplicate (docs/channels/rbm.md#sending-and-agent-events), so a crash between send and record
# never sends twice.
_NAMESPACE = uuid.UUID("7c1c0f0e-5f7a-4d7e-9a57-0d1f5b0e4b1a")


def agent_message_id(config: RbmConfig, message_id: int, part: int = 0) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"{config.agent_id}:{message_id}:{part}"))


async def _phone_call(
    config: RbmConfig,
    http: httpx.AsyncClient,
    method: str,
    msisdn: str,
    tail: str,
    params: dict[str, str],
    body: dict[str, Any] | None = None,
    timed_out: str | None = None,
) -> httpx.Response | SendOutcome:
    """A call on `v1/phones/{msisdn}/{tail}` as this agent (`agentId`)."""
    url = f"{config.api_base_url}/v1/phones/{quote(msisdn, safe='+')}/{tail}"
    params = {**params, "agentId": config.agent_id}
    return await google.call(config, http, SCOPE, PRODUCT, method, url, params, body, timed_out)


def suggestions(extra: Any) -> list[dict[str, Any]]:
    """Suggested replies/actions from the message's `extra`.

    `extra["suggestions"]` is passed through in RBM's own shape; `extra["buttons"]` is the
    channel-neutral form: {"text", "data"} → reply, {"text", "url"} → open URL,
    {"text", "phone"} → dial."""
    if not hasattr(extra, "get"):
        return []
    raw = extra.get("suggestions")
    if isinstance(raw, list) and all(isinstance(s, dict) for s in raw):
        return list(raw)
    out: list[dict[str, Any]] = []
    for b in extra.get("buttons") or []:
        if not isinstance(b, dict) or not b.get("text"):
            continue
        text = str(b["text"])
        postback = str(b.get("data") or text)
        if b.get("url"):
            action: dict[str, Any] = {"openUrlAction": {"url": str(b["url"])}}
        elif b.get("phone"):
            action = {"dialAction": {"phoneNumber": str(b["phone"])}}
        else:
            out.append({"reply": {"text": text, "postbackData": postback}})
            continue
        out.append({"action": {"text": text, "postbackData": postback, **action}})
    return out


async def _post_agent_message(
    config: RbmConfig,
    msisdn: str,
    message_id: str,
    content: dict[str, Any],
    http: httpx.AsyncClient,
) -> SendOutcome:
    body: dict[str, Any] = {"contentMessage": content}
    if config.message_traffic_type:
        body["messageTrafficType"] = config.message_traffic_type
    resp = await _phone_call(
        config,
        http,
        "POST",
        msisdn,
        "agentMessages",
        {"messageId": message_id},
        body,
        "RCS Business Messaging did not answer in time; retrying.",
    )
    if not isinstance(resp, httpx.Response):
        return resp
    if resp.status_code in (200, 409):
        # 409 is ALREADY_EXISTS: our earlier attempt with this id got through.
        return Sent(message_id)
    return google.error_outcome(resp, PRODUCT, NOT_RCS)


async def check_capable(
    config: RbmConfig, msisdn: str, http: httpx.AsyncClient
) -> SendOutcome | None:
    """None when `msisdn` can receive this agent's RCS messages, else the outcome to record.

    Google does no SMS fallback itself and recommends checking capabilities before sending
    (docs/channels/rbm.md#capability-check): a 404 means RCS is off or unsupported on the phone,
    the carrier has not launched the agent, or an unlaunched agent asked about a non-tester. That
    becomes a Permanent failure with code `not_rcs_capable`, which the fallback plan (e.g. "else
    SMS") acts on. A capable number is remembered for `CAPABLE_TTL` seconds, so a conversation
    does not pay one extra call per reply; an incapable one is asked again next time."""
    key = (config.api_base_url, config.agent_id, msisdn)
    if _capable_until.get(key, 0.0) > time.monotonic():
        return None
    result = await capabilities(config, msisdn, http)
    if isinstance(result, list):
        _capable_until[key] = time.monotonic() + CAPABLE_TTL
        return None
    if isinstance(result, Permanent) and result.code == "NOT_FOUND":
        return Permanent(NOT_RCS, "not_rcs_capable")
    return result


async def send_message(
    config: RbmConfig, message: OutboundMessage, http: httpx.AsyncClient
) -> SendOutcome:
    msisdn = message.to
    refused = await check_capable(config, msisdn, http)
    if refused is not None:
        return refused
    chips = suggestions(message.extra)
    # An AgentMessage carries exactly one of text / richCard / contentInfo / uploadedRbmFile,
    # so a text with files goes as several messages; the first one's id stands for the whole.
    parts: list[dict[str, Any]] = []
    if message.text:
        parts.append({"text": message.text})
    for att in message.attachments:
        if att.url:
            parts.append({"contentInfo": {"fileUrl": att.url}})
    if not parts:
        return Permanent("The message has neither text nor a file URL to send over RCS.")
    if chips:
        parts[-1]["suggestions"] = chips
    first: Sent | None = None
    for index, content in enumerate(parts):
        mid = agent_message_id(config, message.message_id, index)
        outcome = await _post_agent_message(config, msisdn, mid, content, http)
        if not isinstance(outcome, Sent):
            return outcome
        first = first or outcome
    assert first is not None
    return first


async def capabilities(
    config: RbmConfig, msisdn: str, http: httpx.AsyncClient
) -> SendOutcome | list[str]:
    """The RCS features of `msisdn`'s phone, or the outcome that explains why there are none
    (404 → Permanent "this number cannot receive RCS")."""
    params = {"requestId": str(uuid.uuid4())}
    resp = await _phone_call(config, http, "GET", msisdn, "capabilities", params)
    if not isinstance(resp, httpx.Response):
        return resp
    if resp.status_code != 200:
        return google.error_outcome(resp, PRODUCT, NOT_RCS)
    features = resp.json().get("features")
    return [str(f) for f in features] if isinstance(features, list) else []


async def send_event(
    config: RbmConfig,
    msisdn: str,
    event_type: str,
    http: httpx.AsyncClient,
    *,
    message_id: str | None = None,
) -> SendOutcome:
    """An agent event: READ (a read receipt for the user's `message_id`) or IS_TYPING."""
    if event_type not in ("READ", "IS_TYPING"):
        return Permanent(f"unknown RBM agent event {event_type!r}")
    body: dict[str, Any] = {"eventType": event_type}
    if event_type == "READ":
        if not message_id:
            return Permanent("a READ event needs the user's message id")
        body["messageId"] = message_id
    event_id = str(uuid.uuid4())
    params = {"eventId": event_id}
    resp = await _phone_call(config, http, "POST", msisdn, "agentEvents", params, body)
    if not isinstance(resp, httpx.Response):
        return resp
    if resp.status_code == 200:
        return Sent(event_id)
    return google.error_outcome(resp, PRODUCT, NOT_RCS)
