"""Sending through the Vonage SMS API (`POST {api_base_url}/sms/json`,
docs/channels/vonage.md#send-api).

Never raises for provider trouble: every answer becomes Sent, Retriable or Permanent.
"""

from __future__ import annotations

import logging

import httpx
import orjson

from tidings.channels.base import OutboundMessage, Permanent, Retriable, SendOutcome, Sent
from tidings.channels.vonage.config import VonageConfig
from tidings.channels.vonage.errors import http_outcome, send_outcome
from tidings.channels.vonage.webhook import CLIENT_REF_PREFIX
from tidings.domain import gsm7
from tidings.domain.enums import MessageKind

log = logging.getLogger(__name__)

TIMEOUT = httpx.Timeout(20.0, connect=5.0)


def _digits(number: str) -> str:
    # Vonage wants international format without "+" or punctuation.
    return "".join(ch for ch in number if ch.isdigit())


def build_params(config: VonageConfig, message: OutboundMessage) -> dict[str, str] | Permanent:
    if message.kind is not MessageKind.TEXT or not message.text:
        return Permanent("Vonage SMS can only carry text messages.")
    to = _digits(message.to)
    if not to:
        return Permanent(f"{message.to!r} is not a phone number Vonage can send to.")
    sender = config.from_number
    return {
        "api_key": config.api_key,
        "api_secret": config.api_secret,
        "from": _digits(sender) if sender.removeprefix("+").isdigit() else sender,
        "to": to,
        "text": message.text,
        # `type=unicode` for anything outside GSM-7, else Vonage mangles it
        # (docs/channels/vonage.md#send-api).
        "type": "text" if gsm7.is_gsm7(message.text) else "unicode",
        "client-ref": f"{CLIENT_REF_PREFIX}{message.message_id}",
    }


async def send_sms(
    config: VonageConfig, message: OutboundMessage, http: httpx.AsyncClient
) -> SendOutcome:
    params = build_params(config, message)
    if isinstance(params, Permanent):
        return params
    try:
        resp = await http.post(
            f"{config.api_base_url}/sms/json",
            content=orjson.dumps(params),
            headers={"Content-Type": "application/json", "Accept": "application/json"},
            timeout=TIMEOUT,
        )
    except httpx.TimeoutException:
        return Retriable("Vonage did not answer in time; the message will be retried.")
    except httpx.TransportError as exc:
        log.warning("vonage send transport error: %r", exc)
        return Retriable("Could not reach Vonage; the message will be retried.")
    if not resp.is_success:
        return http_outcome(resp.status_code)
    try:
        doc = orjson.loads(resp.content)
        parts = doc["messages"]
        assert isinstance(parts, list) and parts
    except (orjson.JSONDecodeError, KeyError, TypeError, AssertionError):
        return Retriable("Vonage answered with something that is not a send result; retrying.")
    # One element per segment; the request failed if any segment did
    # (docs/channels/vonage.md#send-api).
    for part in parts:
        status = str(part.get("status", "")) if isinstance(part, dict) else ""
        if status != "0":
            text = part.get("error-text") if isinstance(part, dict) else None
            return send_outcome(status, text if isinstance(text, str) else None)
    ids = [str(p.get("message-id")) for p in parts]
    log.debug("vonage accepted message %s as %s", message.message_id, ids)
    # Receipts are matched on our client-ref (echoed on every part's receipt), so that is the
    # provider id we keep; Vonage's per-part ids stay in the log.
    return Sent(params["client-ref"])
