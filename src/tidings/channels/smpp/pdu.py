"""SMPP 3.4 PDUs: framing, the bodies Tidings speaks, TLVs, text coding and receipts.

Written with `struct` rather than taken from a library: SMPP 3.4 is small, the session must
control exactly when `deliver_sm_resp` goes out (after the durable commit), and the SMSC
simulator needs the server side too. Facts: docs/channels/smpp.md#protocol-facts (and the SMPP 3.4
specification for the rarer status values).

A PDU is a 16-byte header — command_length, command_id, command_status, sequence_number, all
uint32 big-endian — then mandatory fields (C-octet strings ending in NUL, and single octets),
then optional TLVs (uint16 tag, uint16 length, value).
"""

from __future__ import annotations

import asyncio
import re
import struct
from dataclasses import dataclass, field, replace
from enum import IntEnum

from tidings.domain import gsm7
from tidings.policy import sms

HEADER = struct.Struct(">IIII")
RESPONSE = 0x80000000
# Largest PDU accepted: short_message is <= 254 octets, message_payload up to 64 KiB.
MAX_PDU = 70_000


class Cmd(IntEnum):
    GENERIC_NACK = 0x80000000
    BIND_RECEIVER = 0x01
    BIND_TRANSMITTER = 0x02
    QUERY_SM = 0x03
    SUBMIT_SM = 0x04
    DELIVER_SM = 0x05
    UNBIND = 0x06
    REPLACE_SM = 0x07
    CANCEL_SM = 0x08
    BIND_TRANSCEIVER = 0x09
    OUTBIND = 0x0B
    ENQUIRE_LINK = 0x15
    SUBMIT_MULTI = 0x21
    ALERT_NOTIFICATION = 0x102
    DATA_SM = 0x103


KNOWN_COMMANDS = frozenset(int(c) for c in Cmd) | frozenset(
    int(c) | RESPONSE for c in Cmd if c is not Cmd.GENERIC_NACK
)


class Status(IntEnum):
    ROK = 0x00
    RINVMSGLEN = 0x01
    RINVCMDLEN = 0x02
    RINVCMDID = 0x03
    RINVBNDSTS = 0x04
    RALYBND = 0x05
    RSYSERR = 0x08
    RINVSRCADR = 0x0A
    RINVDSTADR = 0x0B
    RINVMSGID = 0x0C
    RBINDFAIL = 0x0D
    RINVPASWD = 0x0E
    RINVSYSID = 0x0F
    RMSGQFUL = 0x14
    RINVESMCLASS = 0x43
    RSUBMITFAIL = 0x45
    RTHROTTLED = 0x58
    RINVEXPIRY = 0x62
    RX_T_APPN = 0x64  # ESME receiver temporary app error: the SMSC should redeliver
    RX_P_APPN = 0x65
    RINVOPTPARSTREAM = 0xC0
    RDELIVERYFAILURE = 0xFE
    RUNKNOWNERR = 0xFF


def status_name(code: int) -> str:
    try:
        return f"ESME_{Status(code).name}"
    except ValueError:
        return f"0x{code:08X}"


class Tag(IntEnum):
    RECEIPTED_MESSAGE_ID = 0x001E
    SAR_MSG_REF_NUM = 0x020C
    SAR_TOTAL_SEGMENTS = 0x020E
    SAR_SEGMENT_SEQNUM = 0x020F
    SC_INTERFACE_VERSION = 0x0210
    NETWORK_ERROR_CODE = 0x0423
    MESSAGE_PAYLOAD = 0x0424
    MESSAGE_STATE = 0x0427


# esm_class: bits 2-5 give the message type, 0x04 = SMSC delivery receipt; 0x40 = UDHI.
ESM_RECEIPT = 0x04
ESM_TYPE_MASK = 0x3C
ESM_UDHI = 0x40

DC_DEFAULT = 0x00  # SMSC default alphabet: GSM-7, one septet per octet
DC_IA5 = 0x01
DC_LATIN1 = 0x03
DC_UCS2 = 0x08


class PduError(Exception):
    """A PDU that cannot be understood, with the status to answer it with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class Pdu:
    command_id: int
    status: int
    sequence: int
    body: bytes = b""

    @property
    def is_response(self) -> bool:
        return bool(self.command_id & RESPONSE)

    def encode(self) -> bytes:
        return HEADER.pack(16 + len(self.body), self.command_id, self.status, self.sequence) + (
            self.body
        )

    def response(self, status: int = Status.ROK, body: bytes = b"") -> Pdu:
        return Pdu(self.command_id | RESPONSE, status, self.sequence, body)


@dataclass(frozen=True, slots=True)
class BadPdu:
    """A header whose command_length cannot be right. `fatal` when framing is lost."""

    sequence: int
    command_id: int
    status: int
    fatal: bool


async def read_pdu(reader: asyncio.StreamReader) -> Pdu | BadPdu:
    """The next PDU from the stream. Raises asyncio.IncompleteReadError at end of stream."""
    header = await reader.readexactly(16)
    length, command_id, status, sequence = HEADER.unpack(header)
    if length < 16:
        # Only the header was sent: answer generic_nack and carry on with the next octets.
        return BadPdu(sequence, command_id, Status.RINVCMDLEN, fatal=False)
    if length > MAX_PDU:
        return BadPdu(sequence, command_id, Status.RINVCMDLEN, fatal=True)
    body = await reader.readexactly(length - 16) if length > 16 else b""
    return Pdu(command_id, status, sequence, body)


def generic_nack(sequence: int, status: int) -> Pdu:
    return Pdu(Cmd.GENERIC_NACK, status, sequence)


# --- fields -----------------------------------------------------------------------------------


def cstring(value: str, max_octets: int) -> bytes:
    """A C-octet string; `max_octets` counts the NUL, as the SMPP tables do."""
    raw = value.encode("latin-1")
    if len(raw) >= max_octets:
        raise ValueError(f"{value!r} is longer than {max_octets - 1} octets")
    return raw + b"\x00"


class _Reader:
    def __init__(self, body: bytes) -> None:
        self.body = body
        self.pos = 0

    def cstring(self, max_octets: int, status: int = Status.RINVCMDLEN) -> str:
        end = self.body.find(b"\x00", self.pos, self.pos + max_octets)
        if end < 0:
            raise PduError(status, "a C-octet string is unterminated or too long")
        value = self.body[self.pos : end].decode("latin-1")
        self.pos = end + 1
        return value

    def u8(self) -> int:
        if self.pos >= len(self.body):
            raise PduError(Status.RINVCMDLEN, "the body ends before its mandatory fields")
        value = self.body[self.pos]
        self.pos += 1
        return value

    def octets(self, n: int) -> bytes:
        if self.pos + n > len(self.body):
            raise PduError(Status.RINVMSGLEN, "sm_length runs past the end of the body")
        value = self.body[self.pos : self.pos + n]
        self.pos += n
        return value

    def tlvs(self) -> dict[int, bytes]:
        out: dict[int, bytes] = {}
        while self.pos < len(self.body):
            if self.pos + 4 > len(self.body):
                raise PduError(Status.RINVOPTPARSTREAM, "a TLV header is cut short")
            tag, length = struct.unpack_from(">HH", self.body, self.pos)
            self.pos += 4
            if self.pos + length > len(self.body):
                raise PduError(Status.RINVOPTPARSTREAM, "a TLV value is cut short")
            out[tag] = self.body[self.pos : self.pos + length]
            self.pos += length
        return out


def _tlv_bytes(tlvs: dict[int, bytes]) -> bytes:
    return b"".join(struct.pack(">HH", tag, len(v)) + v for tag, v in tlvs.items())


@dataclass(frozen=True, slots=True)
class Bind:
    system_id: str
    password: str
    system_type: str = ""
    interface_version: int = 0x34
    addr_ton: int = 0
    addr_npi: int = 0
    address_range: str = ""

    def encode(self) -> bytes:
        return (
            cstring(self.system_id, 16)
            + cstring(self.password, 9)
            + cstring(self.system_type, 13)
            + bytes([self.interface_version, self.addr_ton, self.addr_npi])
            + cstring(self.address_range, 41)
        )

    @classmethod
    def decode(cls, body: bytes) -> Bind:
        r = _Reader(body)
        system_id = r.cstring(16, Status.RINVSYSID)
        password = r.cstring(9, Status.RINVPASWD)
        system_type = r.cstring(13)
        version, ton, npi = r.u8(), r.u8(), r.u8()
        return cls(system_id, password, system_type, version, ton, npi, r.cstring(41))


@dataclass(frozen=True, slots=True)
class ShortMessage:
    """The body of submit_sm and deliver_sm (their layouts are the same)."""

    source_addr: str
    destination_addr: str
    short_message: bytes = b""
    service_type: str = ""
    source_addr_ton: int = 1
    source_addr_npi: int = 1
    dest_addr_ton: int = 1
    dest_addr_npi: int = 1
    esm_class: int = 0
    protocol_id: int = 0
    priority_flag: int = 0
    schedule_delivery_time: str = ""
    validity_period: str = ""
    registered_delivery: int = 0
    replace_if_present_flag: int = 0
    data_coding: int = DC_DEFAULT
    sm_default_msg_id: int = 0
    tlvs: dict[int, bytes] = field(default_factory=dict)

    def encode(self) -> bytes:
        if len(self.short_message) > 254:
            raise ValueError("short_message is limited to 254 octets; use message_payload")
        return (
            cstring(self.service_type, 6)
            + bytes([self.source_addr_ton, self.source_addr_npi])
            + cstring(self.source_addr, 21)
            + bytes([self.dest_addr_ton, self.dest_addr_npi])
            + cstring(self.destination_addr, 21)
            + bytes([self.esm_class, self.protocol_id, self.priority_flag])
            + cstring(self.schedule_delivery_time, 17)
            + cstring(self.validity_period, 17)
            + bytes(
                [
                    self.registered_delivery,
                    self.replace_if_present_flag,
                    self.data_coding,
                    self.sm_default_msg_id,
                    len(self.short_message),
                ]
            )
            + self.short_message
            + _tlv_bytes(self.tlvs)
        )

    @classmethod
    def decode(cls, body: bytes) -> ShortMessage:
        r = _Reader(body)
        service_type = r.cstring(6)
        src_ton, src_npi = r.u8(), r.u8()
        source = r.cstring(21, Status.RINVSRCADR)
        dst_ton, dst_npi = r.u8(), r.u8()
        dest = r.cstring(21, Status.RINVDSTADR)
        esm, pid, prio = r.u8(), r.u8(), r.u8()
        schedule = r.cstring(17)
        validity = r.cstring(17, Status.RINVEXPIRY)
        reg, replace_flag, coding, default_id, sm_length = r.u8(), r.u8(), r.u8(), r.u8(), r.u8()
        sm = r.octets(sm_length)
        return cls(
            source_addr=source,
            destination_addr=dest,
            short_message=sm,
            service_type=service_type,
            source_addr_ton=src_ton,
            source_addr_npi=src_npi,
            dest_addr_ton=dst_ton,
            dest_addr_npi=dst_npi,
            esm_class=esm,
            protocol_id=pid,
            priority_flag=prio,
            schedule_delivery_time=schedule,
            validity_period=validity,
            registered_delivery=reg,
            replace_if_present_flag=replace_flag,
            data_coding=coding,
            sm_default_msg_id=default_id,
            tlvs=r.tlvs(),
        )

    @property
    def is_receipt(self) -> bool:
        return self.esm_class & ESM_TYPE_MASK == ESM_RECEIPT

    @property
    def payload(self) -> bytes:
        """short_message, or the message_payload TLV when short_message is empty."""
        return self.short_message or self.tlvs.get(Tag.MESSAGE_PAYLOAD, b"")


def message_id_body(message_id: str) -> bytes:
    """submit_sm_resp / deliver_sm_resp body: one C-octet string (65 octets max)."""
    return cstring(message_id, 65)


def read_message_id(body: bytes) -> str:
    return _Reader(body).cstring(65) if body else ""


# --- text ---------------------------------------------------------------------------------------


def encode_parts(text: str) -> tuple[int, list[bytes]]:
    """data_coding and the encoded parts, cut as the policy layer counts them
    (`tidings.policy.sms.analyse`: GSM-7 when every character allows it, else UCS-2; 160/70
    alone, 153/67 per part, grapheme clusters and escape pairs never split —
    docs/providers/sms-encoding.md#segments)."""
    result = sms.analyse(text)
    if result.encoding == "GSM-7":
        return DC_DEFAULT, [gsm7.encode(part.text) for part in result.parts]
    return DC_UCS2, [part.text.encode("utf-16-be") for part in result.parts]


def concat_udh(ref: int, total: int, seq: int) -> bytes:
    """Concatenation UDH, IE 0x00 with an 8-bit reference: `05 00 03 ref total seq`."""
    return bytes([0x05, 0x00, 0x03, ref & 0xFF, total, seq])


def submit_parts(
    base: ShortMessage, data_coding: int, parts: list[bytes], ref: int, use_udh: bool
) -> list[ShortMessage]:
    """One submit_sm per part: UDH (esm_class UDHI) or SAR TLVs carry the concatenation; a
    receipt is asked for on the last part only, whose id then stands for the whole message."""
    total = len(parts)
    out = []
    for seq, data in enumerate(parts, start=1):
        last = seq == total
        reg = base.registered_delivery if last else 0
        if total == 1:
            out.append(replace(base, short_message=data, data_coding=data_coding))
        elif use_udh:
            out.append(
                replace(
                    base,
                    short_message=concat_udh(ref, total, seq) + data,
                    data_coding=data_coding,
                    esm_class=base.esm_class | ESM_UDHI,
                    registered_delivery=reg,
                )
            )
        else:
            tlvs = dict(base.tlvs)
            tlvs[Tag.SAR_MSG_REF_NUM] = struct.pack(">H", ref & 0xFFFF)
            tlvs[Tag.SAR_TOTAL_SEGMENTS] = bytes([total])
            tlvs[Tag.SAR_SEGMENT_SEQNUM] = bytes([seq])
            out.append(
                replace(
                    base,
                    short_message=data,
                    data_coding=data_coding,
                    registered_delivery=reg,
                    tlvs=tlvs,
                )
            )
    return out


@dataclass(frozen=True, slots=True)
class Concat:
    ref: int
    total: int
    seq: int


def split_udh(sm: ShortMessage) -> tuple[bytes, Concat | None]:
    """The user data without its UDH, and the concatenation info if there is any."""
    data = sm.payload
    concat: Concat | None = None
    if sm.esm_class & ESM_UDHI and data:
        udhl = data[0]
        header, data = data[1 : 1 + udhl], data[1 + udhl :]
        i = 0
        while i + 2 <= len(header):
            iei, length = header[i], header[i + 1]
            value = header[i + 2 : i + 2 + length]
            if iei == 0x00 and length == 3:
                concat = Concat(value[0], value[1], value[2])
            elif iei == 0x08 and length == 4:
                concat = Concat(int.from_bytes(value[:2], "big"), value[2], value[3])
            i += 2 + length
    elif Tag.SAR_MSG_REF_NUM in sm.tlvs:
        total = sm.tlvs.get(Tag.SAR_TOTAL_SEGMENTS, b"\x01")[:1]
        seq = sm.tlvs.get(Tag.SAR_SEGMENT_SEQNUM, b"\x01")[:1]
        ref = int.from_bytes(sm.tlvs[Tag.SAR_MSG_REF_NUM], "big")
        concat = Concat(ref, total[0] if total else 1, seq[0] if seq else 1)
    return data, concat


def decode_text(data_coding: int, data: bytes) -> str | None:
    """Text of user data, or None for binary codings."""
    if data_coding == DC_DEFAULT:
        return gsm7.decode(data)
    if data_coding == DC_IA5:
        return data.decode("ascii", errors="replace")
    if data_coding == DC_LATIN1:
        return data.decode("latin-1")
    if data_coding == DC_UCS2:
        return data[: len(data) - len(data) % 2].decode("utf-16-be", errors="replace")
    return None


# --- delivery receipts ------------------------------------------------------------------------

# message_state TLV values (docs/channels/smpp.md#delivery-receipts).
MESSAGE_STATES = {
    1: "ENROUTE",
    2: "DELIVRD",
    3: "EXPIRED",
    4: "DELETED",
    5: "UNDELIV",
    6: "ACCEPTD",
    7: "UNKNOWN",
    8: "REJECTD",
}

_RECEIPT_FIELD = re.compile(r"(id|stat|err):(\S*)", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Receipt:
    message_id: str
    stat: str
    err: str | None


def parse_receipt(sm: ShortMessage) -> Receipt | None:
    """A receipt's id and state, from the TLVs when present, else from the text
    `id:<id> sub:001 dlvrd:001 submit date:... done date:... stat:DELIVRD err:000 text:...`."""
    text = sm.payload.decode("latin-1", errors="replace")
    fields: dict[str, str] = {}
    for name, value in _RECEIPT_FIELD.findall(text.split(" text:")[0]):
        fields.setdefault(name.lower(), value)
    tlv_id = sm.tlvs.get(Tag.RECEIPTED_MESSAGE_ID)
    message_id = tlv_id.rstrip(b"\x00").decode("latin-1") if tlv_id else fields.get("id", "")
    state = sm.tlvs.get(Tag.MESSAGE_STATE)
    stat = MESSAGE_STATES.get(state[0], "UNKNOWN") if state else fields.get("stat", "").upper()
    if not message_id or not stat:
        return None
    return Receipt(message_id, stat, fields.get("err"))


def receipt_text(message_id: str, stat: str, err: str, submitted: str, done: str) -> bytes:
    return (
        f"id:{message_id} sub:001 dlvrd:{'001' if stat == 'DELIVRD' else '000'} "
        f"submit date:{submitted} done date:{done} stat:{stat} err:{err} text:"
    ).encode("latin-1")
