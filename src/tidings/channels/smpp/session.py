"""The long-lived side of an SMPP channel: one bound transceiver session per channel.

SMPP is a TCP session, not HTTP, so it does not fit the webhook path. Instead each worker
process runs `SmppSessions` (started through the runtime's session-channel hook), which keeps
one `SmppSession` per active SMPP channel:

- connect, `bind_transceiver`, then read PDUs until the connection ends; reconnect with
  exponential backoff and jitter; failures are logged, never silent;
- `submit_sm` for sends (the adapter's `send` finds the session by the channel's account key),
  matching `submit_sm_resp` by sequence number;
- `deliver_sm` (customer messages and delivery receipts) is written as an InboundEvent row
  through the group committer *before* `deliver_sm_resp` goes out, so nothing acknowledged is
  lost (if the commit fails the SMSC gets ESME_RX_T_APPN and redelivers); the ingest worker
  then parses it through the adapter like any webhook event;
- `enquire_link` both ways; a link that stops answering is dropped and rebuilt.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import random
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import select

from tidings.channels.base import OutboundMessage, Permanent, RawEvent, Retriable, SendOutcome, Sent
from tidings.channels.smpp import pdu as P
from tidings.channels.smpp.config import SmppConfig
from tidings.channels.smpp.errors import submit_outcome
from tidings.domain.enums import InboundLane, InboundState, MessageKind

if TYPE_CHECKING:
    from tidings.runtime import ChannelInfo, Runtime

log = logging.getLogger(__name__)

Store = Callable[[list[RawEvent]], Awaitable[None]]
AccountKey = tuple[str, int, str, str]

KIND = "smpp"
RECONCILE_SECONDS = 5.0
MAX_SEQUENCE = 0x7FFFFFFF

# The bound session of each SMPP account in this process; `send` looks sessions up here.
_LIVE: dict[AccountKey, SmppSession] = {}


def live_session(config: SmppConfig) -> SmppSession | None:
    return _LIVE.get(config.account_key())


class BindRefused(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(P.status_name(status))
        self.status = status


class SmppSession:
    def __init__(self, channel_id: int, config: SmppConfig, store: Store) -> None:
        self.channel_id = channel_id
        self.config = config
        self._store = store
        self._writer: asyncio.StreamWriter | None = None
        self._bound = asyncio.Event()
        self._pending: dict[int, asyncio.Future[P.Pdu]] = {}
        self._seq = 0
        self._write_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._ref = random.randrange(256)
        self._bind_id = ""
        # Observability (and tests): successful binds, and the last reason a bind ended.
        self.binds = 0
        self.last_error: str | None = None

    @property
    def bound(self) -> bool:
        return self._bound.is_set()

    # -- lifecycle -----------------------------------------------------------------------------

    async def run(self) -> None:
        """Keep the session bound until cancelled."""
        key = self.config.account_key()
        _LIVE[key] = self
        failures = 0
        try:
            while True:
                binds_before = self.binds
                try:
                    await self._connect_and_serve()
                    self.last_error = "the SMSC closed the connection"
                except BindRefused as exc:
                    self.last_error = f"bind refused: {exc}"
                except (OSError, TimeoutError, asyncio.IncompleteReadError) as exc:
                    self.last_error = f"connection failed: {exc!r}"
                failures = 0 if self.binds > binds_before else failures + 1
                delay = min(
                    self.config.reconnect_max_seconds,
                    self.config.reconnect_min_seconds * 2 ** max(0, failures - 1),
                ) * random.uniform(0.8, 1.2)
                log.warning(
                    "smpp channel %s: %s; reconnecting in %.1fs",
                    self.channel_id,
                    self.last_error,
                    delay,
                )
                await asyncio.sleep(delay)
        finally:
            if _LIVE.get(key) is self:
                del _LIVE[key]
            await self._close()

    async def _connect_and_serve(self) -> None:
        c = self.config
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(c.host, c.port), c.response_timeout_seconds
        )
        self._writer = writer
        reading = self._spawn(self._read_loop(reader), "smpp-read")
        keepalive: asyncio.Task[Any] | None = None
        try:
            bind = P.Bind(c.system_id, c.password, c.system_type)
            resp = await self._request(P.Cmd.BIND_TRANSCEIVER, bind.encode())
            if resp.status != P.Status.ROK:
                raise BindRefused(resp.status)
            self.binds += 1
            self._bind_id = f"{self.binds}:{datetime.now(UTC).timestamp()}"
            self._bound.set()
            log.info("smpp channel %s bound to %s:%s", self.channel_id, c.host, c.port)
            keepalive = self._spawn(self._keepalive(), "smpp-enquire-link")
            await reading
        finally:
            self._bound.clear()
            for task in (reading, keepalive):
                if task is not None and not task.done():
                    task.cancel()
            await self._close()

    async def _close(self) -> None:
        writer, self._writer = self._writer, None
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(ConnectionError("the SMPP connection closed"))
        self._pending.clear()
        if writer is not None:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    def _spawn(self, coro: Any, name: str) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = asyncio.create_task(coro, name=f"{name}-{self.channel_id}")
        self._tasks.add(task)

        def done(t: asyncio.Task[Any]) -> None:
            self._tasks.discard(t)
            if not t.cancelled() and t.exception() is not None:
                log.error("smpp task %s failed", t.get_name(), exc_info=t.exception())

        task.add_done_callback(done)
        return task

    # -- wire ----------------------------------------------------------------------------------

    def _next_sequence(self) -> int:
        self._seq = self._seq + 1 if self._seq < MAX_SEQUENCE else 1
        return self._seq

    async def _write(self, pdu: P.Pdu) -> None:
        writer = self._writer
        if writer is None:
            raise ConnectionError("not connected to the SMSC")
        async with self._write_lock:
            writer.write(pdu.encode())
            await writer.drain()

    async def _request(self, command: int, body: bytes) -> P.Pdu:
        seq = self._next_sequence()
        fut: asyncio.Future[P.Pdu] = asyncio.get_running_loop().create_future()
        self._pending[seq] = fut
        try:
            await self._write(P.Pdu(command, 0, seq, body))
            return await asyncio.wait_for(fut, self.config.response_timeout_seconds)
        finally:
            self._pending.pop(seq, None)

    async def _read_loop(self, reader: asyncio.StreamReader) -> None:
        while True:
            try:
                item = await P.read_pdu(reader)
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            if isinstance(item, P.BadPdu):
                log.warning("smpp channel %s: malformed PDU header from SMSC", self.channel_id)
                await self._write(P.generic_nack(item.sequence, item.status))
                if item.fatal:
                    return
                continue
            if item.is_response:  # includes generic_nack
                fut = self._pending.get(item.sequence)
                if fut is not None and not fut.done():
                    fut.set_result(item)
                continue
            if item.command_id == P.Cmd.ENQUIRE_LINK:
                await self._write(item.response())
            elif item.command_id == P.Cmd.DELIVER_SM:
                self._spawn(self._on_deliver(item), "smpp-deliver")
            elif item.command_id == P.Cmd.UNBIND:
                await self._write(item.response())
                return
            else:
                await self._write(P.generic_nack(item.sequence, P.Status.RINVCMDID))

    async def _keepalive(self) -> None:
        while True:
            await asyncio.sleep(self.config.enquire_link_seconds)
            try:
                await self._request(P.Cmd.ENQUIRE_LINK, b"")
            except (TimeoutError, ConnectionError):
                log.warning(
                    "smpp channel %s: enquire_link unanswered; reconnecting", self.channel_id
                )
                if self._writer is not None:
                    self._writer.close()
                return

    async def _on_deliver(self, pdu: P.Pdu) -> None:
        empty_id = P.message_id_body("")
        try:
            sm = P.ShortMessage.decode(pdu.body)
        except P.PduError as exc:
            await self._write(pdu.response(exc.status, empty_id))
            return
        event = self._raw_event(pdu, sm)
        try:
            await self._store([event])
        except Exception:
            log.exception("smpp channel %s: could not store a deliver_sm", self.channel_id)
            # Not stored, so not acknowledged: a temporary error makes the SMSC redeliver.
            await self._write(pdu.response(P.Status.RX_T_APPN, empty_id))
            return
        await self._write(pdu.response(P.Status.ROK, empty_id))

    def _raw_event(self, pdu: P.Pdu, sm: P.ShortMessage) -> RawEvent:
        now = datetime.now(UTC)
        receipt = P.parse_receipt(sm) if sm.is_receipt else None
        if receipt is not None:
            key = f"dlr:{receipt.message_id}:{receipt.stat}"
        else:
            # A customer deliver_sm carries no id of its own. Within one bind the sequence
            # number identifies it (an SMSC resending the same PDU is a duplicate); a
            # redelivery on a new bind after a lost resp may be stored twice (at-least-once).
            digest = hashlib.sha256(f"{self._bind_id}:{pdu.sequence}:".encode() + pdu.body)
            key = f"mo:{digest.hexdigest()[:40]}"
        payload = orjson.dumps({"key": key, "at": now.isoformat(), "body": pdu.body.hex()})
        lane = InboundLane.STATUS if receipt is not None else InboundLane.CUSTOMER
        return RawEvent(key=key, payload=payload, occurred_at=now, lane=lane)

    # -- sending -------------------------------------------------------------------------------

    async def submit(self, message: OutboundMessage) -> SendOutcome:
        if message.kind is not MessageKind.TEXT or not message.text:
            return Permanent("SMPP channels can only carry text messages.")
        destination = "".join(ch for ch in message.to if ch.isdigit())
        if not destination:
            return Permanent(f"{message.to!r} is not a phone number the SMSC can send to.")
        if not self._bound.is_set():
            try:
                await asyncio.wait_for(self._bound.wait(), self.config.send_wait_seconds)
            except TimeoutError:
                return Retriable(
                    "The connection to the SMSC is down; the message goes out when it is back."
                )
        c = self.config
        data_coding, parts = P.encode_parts(message.text)
        if len(parts) > 255:
            return Permanent("The message is too long for SMS (more than 255 parts).")
        self._ref = (self._ref + 1) % 256
        base = P.ShortMessage(
            source_addr=c.source_addr,
            source_addr_ton=c.source_addr_ton,
            source_addr_npi=c.source_addr_npi,
            destination_addr=destination,
            dest_addr_ton=c.dest_addr_ton,
            dest_addr_npi=c.dest_addr_npi,
            registered_delivery=1 if c.registered_delivery else 0,
        )
        message_id = ""
        for sm in P.submit_parts(base, data_coding, parts, self._ref, c.use_udh):
            try:
                resp = await self._request(P.Cmd.SUBMIT_SM, sm.encode())
            except TimeoutError:
                return Retriable("The SMSC did not answer in time; the message will be retried.")
            except ConnectionError:
                return Retriable("The SMPP connection dropped while sending; retrying.")
            if resp.status != P.Status.ROK:
                return submit_outcome(resp.status)
            try:
                message_id = P.read_message_id(resp.body)
            except P.PduError:
                message_id = ""
        if not message_id:
            return Permanent("The SMSC accepted the message but returned no message id.")
        # The receipt was asked for on the last part, so its id stands for the message.
        return Sent(message_id)


class SmppSessions:
    """Every SMPP bind of one worker process: one session per active SMPP channel."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.sessions: dict[int, tuple[SmppSession, asyncio.Task[Any]]] = {}

    async def run(self) -> None:
        self.rt.channel_hooks.append(self._on_channel)
        try:
            while True:
                try:
                    await self.reconcile()
                except Exception:
                    log.exception("smpp: could not list SMPP channels; trying again")
                await asyncio.sleep(RECONCILE_SECONDS)
        finally:
            with contextlib.suppress(ValueError):
                self.rt.channel_hooks.remove(self._on_channel)
            for _session, task in self.sessions.values():
                task.cancel()
            self.sessions.clear()

    async def _on_channel(self, info: ChannelInfo) -> None:
        if info.kind == KIND and info.active:
            self._ensure(info)

    async def reconcile(self) -> None:
        from tidings.storage.models import Channel

        async with self.rt.db.read() as s:
            ids = (
                await s.scalars(
                    select(Channel.id).where(Channel.kind == KIND, Channel.active.is_(True))
                )
            ).all()
        for channel_id in ids:
            self.rt.channels.invalidate(channel_id)
            info = await self.rt.channels.get(channel_id)
            if info is not None and info.active:
                self._ensure(info)
        for gone in set(self.sessions) - set(ids):
            self.sessions.pop(gone)[1].cancel()

    def _ensure(self, info: ChannelInfo) -> None:
        config = info.config
        assert isinstance(config, SmppConfig)
        current = self.sessions.get(info.id)
        if current is not None and current[0].config == config and not current[1].done():
            return
        if current is not None:
            current[1].cancel()
        other = _LIVE.get(config.account_key())
        if other is not None and other.channel_id != info.id:
            log.error(
                "smpp channel %s uses the same SMSC account as channel %s; not binding twice",
                info.id,
                other.channel_id,
            )
            return
        session = SmppSession(info.id, config, self._storer(info))
        task = self.rt.spawn(session.run(), name=f"smpp-session-{info.id}")
        self.sessions[info.id] = (session, task)

    def _storer(self, info: ChannelInfo) -> Store:
        from tidings.storage.types import utcnow

        async def store(events: list[RawEvent]) -> None:
            now = utcnow()
            rows = [
                {
                    "workspace_id": info.workspace_id,
                    "channel_id": info.id,
                    "event_key": e.key,
                    "payload": e.payload,
                    "occurred_at": e.occurred_at,
                    "received_at": now,
                    "state": InboundState.PENDING,
                    "attempts": 0,
                    "next_attempt_at": now,
                    "error": None,
                    "lane": e.lane,
                }
                for e in events
            ]
            await self.rt.committer.submit(rows)

        return store
