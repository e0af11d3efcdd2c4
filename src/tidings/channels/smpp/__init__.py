"""SMPP 3.4 channel: an ESME bound as transceiver to a carrier's or aggregator's SMSC.

Unlike the webhook channels, traffic flows over one long-lived TCP session per channel
(`session.py`), which the worker runtime runs through `run_sessions`. Customer messages and
delivery receipts arrive as `deliver_sm` and are stored as InboundEvents through the same durable
path as webhooks; `parse` here turns them into canonical events. Facts:
docs/channels/smpp.md#protocol-facts and docs/providers/sms-encoding.md.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar

import httpx
import orjson
from pydantic import BaseModel

from tidings.channels.base import (
    Adapter,
    Capabilities,
    OutboundMessage,
    RawEvent,
    Retriable,
    SendOutcome,
    WebhookReply,
    WebhookRequest,
)
from tidings.channels.smpp import pdu as P
from tidings.channels.smpp.config import SmppConfig
from tidings.channels.smpp.errors import RECEIPT_FAILURES
from tidings.channels.smpp.session import SmppSessions, live_session
from tidings.domain.enums import MessageKind, MessageStatus
from tidings.domain.errors import PayloadError, SignatureError
from tidings.domain.events import CanonicalEvent, Ignored, InboundMessage, Sender, StatusUpdate
from tidings.domain.phones import to_e164

if TYPE_CHECKING:
    from tidings.runtime import Runtime

__all__ = ["SmppAdapter", "SmppConfig"]

_RECEIPT_STATUS = {
    "DELIVRD": MessageStatus.DELIVERED,
    "ACCEPTD": MessageStatus.SENT,
    "ENROUTE": MessageStatus.SENT,
    **dict.fromkeys(RECEIPT_FAILURES, MessageStatus.FAILED),
}


class SmppAdapter(Adapter[SmppConfig]):
    kind: ClassVar[str] = "smpp"
    label: ClassVar[str] = "SMS (SMPP)"
    capabilities: ClassVar[Capabilities] = Capabilities(
        color="#9a3412",
        icon="radio-tower",
        # Up to 255 parts are possible (docs/providers/sms-encoding.md#segments); the policy layer
        # caps segments further.
        text_max_length=153 * 10,
        receipts=("sent", "delivered"),
        # Segment/encoding policy and STOP/START/HELP keywords apply.
        sms=True,
        # SMSC accounts are typically provisioned at tens of messages per second (it varies by
        # carrier: docs/channels/smpp.md#submit_sm); a throttled submit (ESME_RTHROTTLED) is
        # retried after a second.
        rate_per_second=20.0,
        max_webhook_bytes=1024,
    )
    config_model: ClassVar[type[BaseModel]] = SmppConfig
    secret_fields: ClassVar[frozenset[str]] = frozenset({"password"})

    def handshake(self, config: Any, request: WebhookRequest) -> WebhookReply:
        return WebhookReply(404, b"SMPP channels have no webhook; traffic uses the SMPP bind.")

    def verify(self, config: Any, request: WebhookRequest) -> None:
        # Nothing may be injected over HTTP: SMPP events come only from the bound session.
        raise SignatureError("SMPP channels accept no webhooks; events come over the SMPP bind")

    def split(self, config: Any, request: WebhookRequest) -> list[RawEvent]:
        return []

    def ack(self, config: Any, request: WebhookRequest) -> WebhookReply:
        return WebhookReply(404, b"")

    def parse(self, config: Any, payload: bytes) -> list[CanonicalEvent]:
        doc = orjson.loads(payload)
        try:
            sm = P.ShortMessage.decode(bytes.fromhex(doc["body"]))
        except P.PduError as exc:
            raise PayloadError(f"deliver_sm cannot be decoded: {exc}") from None
        at = datetime.fromisoformat(doc["at"]) if doc.get("at") else datetime.now(UTC)
        if sm.is_receipt:
            return [_receipt(sm, at)]
        return [_inbound(sm, str(doc["key"]), at)]

    async def send(
        self, config: Any, message: OutboundMessage, http: httpx.AsyncClient
    ) -> SendOutcome:
        session = live_session(self.cfg(config))
        if session is None:
            return Retriable("The SMPP session for this channel is not running yet; retrying.")
        return await session.submit(message)

    async def run_sessions(self, rt: Runtime) -> None:
        """Run one bound session per active SMPP channel in this worker process."""
        await SmppSessions(rt).run()


def _receipt(sm: P.ShortMessage, at: datetime) -> StatusUpdate | Ignored:
    receipt = P.parse_receipt(sm)
    if receipt is None:
        raise PayloadError("delivery receipt has no message id or state")
    status = _RECEIPT_STATUS.get(receipt.stat)
    if status is None:
        return Ignored(f"receipt state {receipt.stat!r} says nothing definite")
    failed = status == MessageStatus.FAILED
    return StatusUpdate(
        provider_message_id=receipt.message_id,
        status=status,
        occurred_at=at,
        recipient=sm.source_addr,
        error_code=receipt.err if failed else None,
        error_reason=RECEIPT_FAILURES.get(receipt.stat) if failed else None,
    )


def _inbound(sm: P.ShortMessage, key: str, at: datetime) -> InboundMessage:
    raw = sm.source_addr.strip()
    digits = "".join(ch for ch in raw if ch.isdigit())
    # TON 1 is international; other TONs are still tried as international digits, and a
    # sender that does not parse (short code, alphanumeric) is kept as given and flagged.
    phone = to_e164(f"+{digits}") if digits and digits == raw.lstrip("+") else None
    extra: dict[str, Any] = {"to": sm.destination_addr}
    if phone is None:
        extra["unparsed_sender"] = raw
    data, concat = P.split_udh(sm)
    if concat is not None:
        extra["concat"] = {"ref": concat.ref, "part": concat.seq, "total": concat.total}
    text = P.decode_text(sm.data_coding, data)
    if text is None:
        extra["data_coding"] = sm.data_coding
    return InboundMessage(
        provider_message_id=key,
        # The raw sender goes along as the phone: a national form ("0612345678", TON 2) is
        # read in the workspace's default region when the contact is resolved. The network
        # delivered it from that number: verified (docs/architecture.md, inbound pipeline).
        sender=Sender(address=phone or raw, phone=phone or raw, phone_verified=True),
        occurred_at=at,
        kind=MessageKind.TEXT if text is not None else MessageKind.UNSUPPORTED,
        text=text,
        extra=extra,
    )
