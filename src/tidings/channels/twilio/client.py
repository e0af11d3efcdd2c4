"""Sending through Twilio's Messages API (docs/channels/twilio.md#send-api) over an injected
httpx client."""

from __future__ import annotations

import httpx

from tidings.channels.base import OutboundMessage, Permanent, Retriable, SendOutcome, Sent
from tidings.channels.twilio import errors
from tidings.channels.twilio.config import TwilioConfig

# Twilio accepts up to 10 MediaUrl per message (docs/channels/twilio.md#send-api).
MAX_MEDIA = 10


def messages_url(config: TwilioConfig) -> str:
    return f"{config.api_base_url}/2010-04-01/Accounts/{config.account_sid}/Messages.json"


def form(config: TwilioConfig, message: OutboundMessage) -> list[tuple[str, str]]:
    data: list[tuple[str, str]] = [("To", message.to)]
    if config.messaging_service_sid:
        data.append(("MessagingServiceSid", config.messaging_service_sid))
    else:
        assert config.from_number is not None
        data.append(("From", config.from_number))
    if message.text:
        data.append(("Body", message.text))
    urls = [a.url for a in message.attachments if a.url][:MAX_MEDIA]
    data += [("MediaUrl", url) for url in urls]
    if message.webhook_url:
        # Statuses come back to the channel's own webhook, where they are signed like inbound.
        data.append(("StatusCallback", message.webhook_url))
    return data


async def send_message(
    config: TwilioConfig, message: OutboundMessage, http: httpx.AsyncClient
) -> SendOutcome:
    data = form(config, message)
    if not any(name in ("Body", "MediaUrl") for name, _ in data):
        return Permanent("The message has neither text nor media with a URL; nothing to send.")
    try:
        resp = await http.post(
            messages_url(config),
            data=dict(_grouped(data)),
            auth=(config.account_sid, config.auth_token),
            headers={"Accept": "application/json"},
            timeout=15.0,
        )
    except httpx.TimeoutException:
        return Retriable("Twilio did not answer in time; the message will be retried.")
    except httpx.HTTPError as exc:
        return Retriable(f"Could not reach Twilio ({type(exc).__name__}); will retry.")
    if resp.status_code in (200, 201):
        try:
            doc = resp.json()
        except ValueError:
            doc = None
        sid = doc.get("sid") if isinstance(doc, dict) else None
        if not isinstance(sid, str) or not sid:
            return Retriable("Twilio accepted the request but returned no message sid.")
        return Sent(sid)
    code: int | None = None
    detail: str | None = None
    try:
        doc = resp.json()
        if isinstance(doc, dict):
            raw_code = doc.get("code")
            code = raw_code if isinstance(raw_code, int) else None
            detail = str(doc.get("message") or "") or None
    except ValueError:
        pass
    if code is None and resp.status_code == 429:
        code = 20429
    return errors.outcome(code, resp.status_code, detail, _retry_after(resp))


def _grouped(data: list[tuple[str, str]]) -> dict[str, str | list[str]]:
    """httpx wants repeated form fields (MediaUrl) as a list under one key."""
    out: dict[str, str | list[str]] = {}
    for name, value in data:
        current = out.get(name)
        if current is None:
            out[name] = value
        elif isinstance(current, list):
            current.append(value)
        else:
            out[name] = [current, value]
    return out


def _retry_after(resp: httpx.Response) -> float | None:
    value = resp.headers.get("retry-after", "").strip()
    return float(value) if value.isdigit() else None
