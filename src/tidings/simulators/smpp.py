"""A small SMSC on loopback that speaks SMPP 3.4
(docs/channels/smpp.md#protocol-facts), for the sandbox and tests.

- TCP server on 127.0.0.1 (port configurable, 0 = any free port); `start()` / `stop()` can be
  called again to simulate an SMSC restart (accounts and history are kept).
- `bind_transceiver` / `bind_transmitter` / `bind_receiver` with system_id + password
  (ESME_RINVSYSID, ESME_RINVPASWD, ESME_RALYBND); other commands before a bind get
  ESME_RINVBNDSTS.
- `submit_sm` → `submit_sm_resp` with a message id, then (if registered_delivery asks) a
  delivery receipt `deliver_sm` (esm_class 0x04, `id:… stat:DELIVRD …` text and the
  receipted_message_id / message_state TLVs) after `receipt_delay`; concatenated parts (UDH IE
  0x00 / 0x08, or SAR TLVs) are reassembled for the phone view.
- customer messages as `deliver_sm` (GSM-7 or UCS-2, long ones as UDH parts), redelivered until
  a `deliver_sm_resp` with ESME_ROK comes back.
- `enquire_link` answered, `unbind` honoured; a `throttle` knob answers ESME_RTHROTTLED.
- Malformed PDUs: a command_length under 16 → generic_nack ESME_RINVCMDLEN, an unknown
  command_id → generic_nack ESME_RINVCMDID, a body that does not decode → the command's
  response with the matching status; the session stays up.

HTTP control (mounted at /sandbox/smpp): `PUT /_sim/accounts/{system_id}` {password, number?},
`POST /_sim/inbound` {system_id, from, text, binary?, part_order?} or {system_id, retransmit:
<id returned earlier>}, `POST /_sim/config` {throttle?, receipt_delay?,
receipt_stat?}, `GET /_sim/submitted?system_id=`, `GET /_sim/conversations?system_id=&user=`,
`GET /_sim/sessions`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import os
import random
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from tidings.channels.smpp import pdu as P
from tidings.simulators.kit import (
    DemoChannel,
    SandboxEntry,
    TaskSet,
    check_order,
    control_error,
    control_routes,
    digits,
    in_order,
    int_list,
    knobs_handler,
    list_handler,
    read_json,
    refusing_bad_input,
    set_status,
    thread_entry,
    thread_of,
    thread_route,
)

if TYPE_CHECKING:
    from tidings.runtime import ChannelInfo

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
_BIND_COMMANDS = {P.Cmd.BIND_TRANSCEIVER, P.Cmd.BIND_TRANSMITTER, P.Cmd.BIND_RECEIVER}


@dataclass
class Account:
    password: str
    number: str = "14155550111"
    submitted: list[dict[str, Any]] = field(default_factory=list)
    thread: list[dict[str, Any]] = field(default_factory=list)
    # Concatenated parts waiting for their siblings, by (destination, reference).
    partial: dict[tuple[str, int], dict[int, str]] = field(default_factory=dict)


class Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.system_id: str | None = None
        self.mode: int | None = None
        self.seq = itertools.count(1)
        self.acks: dict[int, asyncio.Future[int]] = {}
        self.lock = asyncio.Lock()

    async def send(self, pdu: P.Pdu) -> None:
        async with self.lock:
            self.writer.write(pdu.encode())
            await self.writer.drain()


class SmscSimulator:
    def __init__(
        self,
        port: int = 0,
        *,
        receipt_delay: float = 0.05,
        redeliver_after: float = 1.0,
        fallback_to_free_port: bool = False,
    ) -> None:
        self.port = port
        self.fallback_to_free_port = fallback_to_free_port
        self.receipt_delay = receipt_delay
        self.redeliver_after = redeliver_after
        self.receipt_stat = "DELIVRD"
        self.throttle = 0  # the next N submit_sm get ESME_RTHROTTLED
        self.accounts: dict[str, Account] = {}
        self.connections: set[Connection] = set()
        # Per customer message: the connection/sequence/body each part went out with.
        self.mo: dict[str, list[dict[str, Any]]] = {}
        self.errors: list[dict[str, Any]] = []  # malformed PDUs seen, for the sandbox and tests
        self.enquire_links = 0
        self._server: asyncio.Server | None = None
        self._ids = itertools.count(0x1D305B4C)
        self.tasks = TaskSet()
        self.app = Starlette(
            routes=control_routes(
                {
                    "accounts/{system_id}": (self._r_account, ["PUT"]),
                    "inbound": (self._r_inbound, ["POST"]),
                    "config": (
                        knobs_handler(
                            self, {"throttle": int, "receipt_delay": float, "receipt_stat": str}
                        ),
                        ["POST"],
                    ),
                    "submitted": (list_handler(self.accounts, "system_id", "submitted"), ["GET"]),
                    "conversations": (thread_route(self.conversations, "system_id"), ["GET"]),
                    "sessions": (self._r_sessions, ["GET"]),
                }
            )
        )

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        try:
            self._server = await asyncio.start_server(self._serve, HOST, self.port)
        except OSError:
            if not self.fallback_to_free_port or self.port == 0:
                raise
            log.warning("sandbox SMSC: port %s is taken; listening on a free port", self.port)
            self._server = await asyncio.start_server(self._serve, HOST, 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        """Close the listener and every session, as an SMSC restart would."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for conn in list(self.connections):
            conn.writer.close()
        if server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 5)

    async def aclose(self) -> None:
        await self.stop()
        await self.tasks.aclose()

    def register(self, system_id: str, password: str, number: str | None = None) -> Account:
        acct = self.accounts.get(system_id)
        if acct is None:
            acct = self.accounts[system_id] = Account(password)
        acct.password = password
        if number:
            acct.number = digits(number) or number
        return acct

    # -- the SMPP server -----------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = Connection(reader, writer)
        self.connections.add(conn)
        try:
            while True:
                try:
                    item = await P.read_pdu(reader)
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                if isinstance(item, P.BadPdu):
                    self.errors.append({"error": "command_length", "sequence": item.sequence})
                    await conn.send(P.generic_nack(item.sequence, item.status))
                    if item.fatal:
                        return
                    continue
                if not await self._handle(conn, item):
                    return
        except ConnectionError:
            return
        finally:
            self.connections.discard(conn)
            for fut in conn.acks.values():
                if not fut.done():
                    fut.set_result(-1)
            writer.close()

    async def _handle(self, conn: Connection, pdu: P.Pdu) -> bool:
        """Answer one PDU; False ends the session."""
        cmd = pdu.command_id
        if pdu.is_response:
            fut = conn.acks.get(pdu.sequence)
            if fut is not None and not fut.done():
                fut.set_result(pdu.status)
            return True
        if cmd not in P.KNOWN_COMMANDS:
            self.errors.append({"error": "command_id", "command_id": cmd})
            await conn.send(P.generic_nack(pdu.sequence, P.Status.RINVCMDID))
            return True
        if cmd == P.Cmd.ENQUIRE_LINK:
            self.enquire_links += 1
            await conn.send(pdu.response())
            return True
        if cmd in _BIND_COMMANDS:
            await conn.send(pdu.response(self._bind(conn, pdu), P.cstring("TidingsSMSC", 16)))
            return True
        if cmd == P.Cmd.UNBIND:
            await conn.send(pdu.response())
            return False
        if conn.system_id is None:
            await conn.send(pdu.response(P.Status.RINVBNDSTS))
            return True
        if cmd == P.Cmd.SUBMIT_SM:
            status, message_id = self._submit(conn, pdu)
            await conn.send(pdu.response(status, P.message_id_body(message_id)))
            return True
        await conn.send(P.generic_nack(pdu.sequence, P.Status.RINVCMDID))
        return True

    def _bind(self, conn: Connection, pdu: P.Pdu) -> int:
        if conn.system_id is not None:
            return P.Status.RALYBND
        try:
            bind = P.Bind.decode(pdu.body)
        except P.PduError as exc:
            return exc.status
        acct = self.accounts.get(bind.system_id)
        if acct is None:
            return P.Status.RINVSYSID
        if bind.password != acct.password:
            return P.Status.RINVPASWD
        conn.system_id, conn.mode = bind.system_id, pdu.command_id
        return P.Status.ROK

    def _submit(self, conn: Connection, pdu: P.Pdu) -> tuple[int, str]:
        try:
            sm = P.ShortMessage.decode(pdu.body)
        except P.PduError as exc:
            self.errors.append({"error": "submit_sm", "status": exc.status})
            return exc.status, ""
        if conn.mode == P.Cmd.BIND_RECEIVER:
            return P.Status.RINVBNDSTS, ""
        if self.throttle > 0:
            self.throttle -= 1
            return P.Status.RTHROTTLED, ""
        if not sm.destination_addr.isdigit() or not 5 <= len(sm.destination_addr) <= 15:
            return P.Status.RINVDSTADR, ""
        if not sm.source_addr:
            return P.Status.RINVSRCADR, ""
        data, concat = P.split_udh(sm)
        text = P.decode_text(sm.data_coding, data)
        if text is None:
            return P.Status.RSUBMITFAIL, ""
        message_id = f"{next(self._ids):x}"
        assert conn.system_id is not None
        acct = self.accounts[conn.system_id]
        acct.submitted.append(
            {
                "message_id": message_id,
                "source_addr": sm.source_addr,
                "destination_addr": sm.destination_addr,
                "data_coding": sm.data_coding,
                "esm_class": sm.esm_class,
                "registered_delivery": sm.registered_delivery,
                "udh": sm.short_message[:6].hex() if sm.esm_class & P.ESM_UDHI else None,
                "concat": [concat.ref, concat.total, concat.seq] if concat else None,
                "text": text,
            }
        )
        self._to_thread(acct, sm.destination_addr, text, concat, message_id)
        if sm.registered_delivery & 0x03:
            self.tasks.spawn(
                self._receipt(conn.system_id, sm, message_id), f"smsc-receipt-{message_id}"
            )
        return P.Status.ROK, message_id

    def _to_thread(
        self, acct: Account, dest: str, text: str, concat: P.Concat | None, message_id: str
    ) -> None:
        if concat is not None and concat.total > 1:
            parts = acct.partial.setdefault((dest, concat.ref), {})
            parts[concat.seq] = text
            if len(parts) < concat.total:
                return
            del acct.partial[(dest, concat.ref)]
            text = "".join(parts[i] for i in sorted(parts))
        acct.thread.append(thread_entry(message_id, "out", text, "submitted", user=f"+{dest}"))

    async def _receipt(self, system_id: str, sm: P.ShortMessage, message_id: str) -> None:
        await asyncio.sleep(self.receipt_delay)
        stat = self.receipt_stat
        stamp = datetime.now(UTC).strftime("%y%m%d%H%M")
        state = {v: k for k, v in P.MESSAGE_STATES.items()}.get(stat, 7)
        receipt = P.ShortMessage(
            source_addr=sm.destination_addr,
            destination_addr=sm.source_addr,
            esm_class=P.ESM_RECEIPT,
            short_message=P.receipt_text(
                message_id, stat, "000" if stat == "DELIVRD" else "001", stamp, stamp
            ),
            tlvs={
                P.Tag.RECEIPTED_MESSAGE_ID: P.cstring(message_id, 65),
                P.Tag.MESSAGE_STATE: bytes([state]),
            },
        )
        if await self._deliver(system_id, receipt):
            status = "delivered" if stat == "DELIVRD" else stat.lower()
            set_status(self.accounts[system_id].thread, message_id, status)

    async def _deliver(
        self, system_id: str, sm: P.ShortMessage, attempts: int = 20, *, record: Any = None
    ) -> bool:
        """deliver_sm to a bound session of the account until it answers ESME_ROK. `record`
        (a dict) gets the connection and sequence number used, so the very same PDU can be
        transmitted again (`retransmit`)."""
        body = sm.encode()
        for _ in range(attempts):
            conn = next(
                (
                    c
                    for c in self.connections
                    if c.system_id == system_id and c.mode != P.Cmd.BIND_TRANSMITTER
                ),
                None,
            )
            if conn is not None:
                seq = next(conn.seq)
                if isinstance(record, dict):
                    record.update({"conn": conn, "seq": seq, "body": body})
                if await self._transmit(conn, seq, body, self.redeliver_after) == P.Status.ROK:
                    return True
            await asyncio.sleep(self.redeliver_after * random.uniform(0.5, 1.0))
        log.warning("smsc simulator gave up delivering to %s", system_id)
        return False

    async def inbound(
        self,
        system_id: str,
        sender: str,
        text: str,
        *,
        binary: bool = False,
        part_order: list[int] | None = None,
    ) -> dict[str, Any]:
        """A customer texts the account's number. `binary` sends the text's bytes with
        data_coding 0x04 (8-bit binary, no text); `part_order` (1-based part numbers, repeats
        allowed) delivers the parts one by one in that order — out of order, or a part twice
        as a fresh deliver_sm, as SMSCs do after a lost response."""
        acct = self.accounts[system_id]
        msisdn = digits(sender)
        if binary:
            # 8-bit binary (docs/channels/smpp.md#submit_sm)
            data_coding, parts = 0x04, [text.encode()]
        else:
            data_coding, parts = P.encode_parts(text)
        base = P.ShortMessage(source_addr=msisdn, destination_addr=acct.number)
        pdus = P.submit_parts(base, data_coding, parts, random.randrange(256), use_udh=True)
        check_order(part_order, len(pdus))
        mo_id = f"mo-{len(acct.thread)}"
        acct.thread.append(thread_entry(mo_id, "in", text, "sent", user=f"+{msisdn}"))
        records: list[dict[str, Any]] = [{} for _ in pdus]
        self.mo[mo_id] = records
        if part_order:
            send = functools.partial(self._deliver, system_id)
            self.tasks.spawn(in_order(send, pdus, part_order), "smsc-mo")
        else:
            for sm, record in zip(pdus, records, strict=True):
                self.tasks.spawn(self._deliver(system_id, sm, record=record), "smsc-mo")
        return {"id": mo_id, "parts": len(pdus), "data_coding": data_coding}

    async def retransmit(self, mo_id: str) -> int:
        """Send the very same deliver_sm PDUs of an earlier customer message again, same
        sequence numbers on the same session: what an SMSC does when it did not see our
        deliver_sm_resp in time. Returns how many PDUs went out again."""
        sent = 0
        for record in self.mo.get(mo_id, []):
            conn = record.get("conn")
            if conn is not None and conn in self.connections:
                wait = self.redeliver_after * 5
                sent += await self._transmit(conn, record["seq"], record["body"], wait) is not None
        return sent

    async def _transmit(self, conn: Connection, seq: int, body: bytes, wait: float) -> int | None:
        """Send one deliver_sm on a session and wait up to `wait` seconds for the response:
        its command_status (-1 when the session closed first), None when none came."""
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        conn.acks[seq] = fut
        try:
            await conn.send(P.Pdu(P.Cmd.DELIVER_SM, 0, seq, body))
            return await asyncio.wait_for(fut, wait)
        except (TimeoutError, ConnectionError):
            return None
        finally:
            conn.acks.pop(seq, None)

    # -- control routes ------------------------------------------------------------------------

    async def _r_account(self, request: Request) -> Response:
        spec = await read_json(request)
        if not isinstance(spec.get("password"), str):
            return control_error("password is required")
        self.register(request.path_params["system_id"], spec["password"], spec.get("number"))
        return JSONResponse({"ok": True, "host": HOST, "port": self.port})

    @refusing_bad_input
    async def _r_inbound(self, request: Request) -> Response:
        spec = await read_json(request)
        system_id = str(spec.get("system_id", ""))
        if system_id not in self.accounts:
            return control_error("unknown system_id", 404)
        if spec.get("retransmit"):
            sent = await self.retransmit(str(spec["retransmit"]))
            return JSONResponse({"id": str(spec["retransmit"]), "retransmitted": sent})
        sender, text = str(spec.get("from", "")), str(spec.get("text", ""))
        if not any(ch.isdigit() for ch in sender) or not text:
            return control_error("from and text are required")
        order = int_list(spec, "part_order")
        return JSONResponse(
            await self.inbound(
                system_id, sender, text, binary=spec.get("binary") is True, part_order=order
            )
        )

    def conversations(self, system_id: str, user: str | None = None) -> list[dict[str, Any]]:
        acct = self.accounts.get(system_id)
        return thread_of(acct.thread, f"+{digits(user)}" if user else None) if acct else []

    async def _r_sessions(self, _request: Request) -> Response:
        return JSONResponse(
            {
                "port": self.port,
                "sessions": [{"system_id": c.system_id, "mode": c.mode} for c in self.connections],
                "errors": self.errors,
            }
        )


class SmppBinding:
    """Connects sandbox SMPP channels to the simulated SMSC (see `simulators.sandbox`)."""

    kind: ClassVar[str] = "smpp"

    def __init__(self, sim: SmscSimulator) -> None:
        self.sim = sim

    def owns(self, channel: ChannelInfo) -> bool:
        c: Any = channel.config
        return bool(c.host in (HOST, "localhost") and c.port == self.sim.port)

    async def register(self, channel: ChannelInfo, webhook_url: str) -> None:
        c: Any = channel.config
        self.sim.register(c.system_id, c.password, c.source_addr)

    async def send_as_customer(
        self, channel: ChannelInfo, user: str, name: str | None, text: str
    ) -> dict[str, Any]:
        c: Any = channel.config
        if not any(ch.isdigit() for ch in user):
            return {"error": "an SMS customer is a phone number"}
        return await self.sim.inbound(c.system_id, user, text)

    async def thread(self, channel: ChannelInfo, user: str) -> list[dict[str, Any]]:
        c: Any = channel.config
        return self.sim.conversations(c.system_id, user)


# The system_id prefix of the sandbox's own SMPP channels (`create_demo_channels`): with a
# loopback host it marks a channel that dials the sandbox SMSC, wherever that listens.
SANDBOX_SYSTEM_ID_PREFIX = "sbx"


def dials_sandbox_smsc(config: Any) -> bool:
    return bool(
        config.host in (HOST, "localhost")
        and str(config.system_id).startswith(SANDBOX_SYSTEM_ID_PREFIX)
    )


def sandbox_port() -> int:
    """The sandbox SMSC's port: TIDINGS_SANDBOX_SMPP_PORT, else 2775 (demo channels point there;
    when it is taken the sandbox falls back to a free port and logs it)."""
    raw = os.environ.get("TIDINGS_SANDBOX_SMPP_PORT", "2775")
    return int(raw) if raw.isdigit() else 2775


SANDBOX = SandboxEntry(
    "smpp",
    lambda base: SmscSimulator(sandbox_port(), fallback_to_free_port=True),
    lambda base, sim: SmppBinding(sim),
    (
        DemoChannel(
            "smpp",
            "SMS via SMPP (sandbox SMSC)",
            lambda base: {
                "host": "127.0.0.1",
                "port": sandbox_port(),
                "system_id": f"{SANDBOX_SYSTEM_ID_PREFIX}{secrets.token_hex(3)}",
                "password": secrets.token_hex(4),
                "source_addr": "14155550111",
                "enquire_link_seconds": 15,
            },
        ),
    ),
)
