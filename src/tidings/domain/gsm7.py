"""GSM 03.38 default alphabet: text to unpacked septets and back, and splitting into
parts that never cut an escape pair or a surrogate pair.

The policy layer (`tidings.policy.sms`) owns segment *counting* for the composer; this module is
the wire encoding that an SMSC expects (`data_coding` 0, one septet per octet, unpacked — the
way SMPP carries GSM text, unlike the packed septets of the air interface).
"""

from __future__ import annotations

# Digest D1: the basic table, by code point 0x00-0x7F (0x1B is the escape to the extension
# table and 0x20.. mostly matches ASCII). Lower-case ç is not in it (0x09 is Ç).
_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
# Digest D1: extension characters cost two septets, ESC (0x1B) + code.
_EXTENSION = {
    "\f": 0x0A,
    "^": 0x14,
    "{": 0x28,
    "}": 0x29,
    "\\": 0x2F,
    "[": 0x3C,
    "~": 0x3D,
    "]": 0x3E,
    "|": 0x40,
    "€": 0x65,
}
assert len(_BASIC) == 128

_ENCODE: dict[str, bytes] = {ch: bytes([i]) for i, ch in enumerate(_BASIC) if i != 0x1B}
_ENCODE.update({ch: bytes([0x1B, code]) for ch, code in _EXTENSION.items()})
_DECODE_EXT = {code: ch for ch, code in _EXTENSION.items()}

ESC = 0x1B


def is_gsm7(text: str) -> bool:
    """Whether every character of `text` is in the GSM-7 basic or extension table."""
    return all(ch in _ENCODE for ch in text)


def encode(text: str) -> bytes:
    """Unpacked septets (one per octet). Raises ValueError naming the first non-GSM character."""
    out = bytearray()
    for ch in text:
        code = _ENCODE.get(ch)
        if code is None:
            raise ValueError(f"{ch!r} is not in the GSM-7 alphabet")
        out += code
    return bytes(out)


def decode(data: bytes) -> str:
    """Unpacked septets to text. Unknown escapes read as a space (3GPP TS 23.038 §6.2.1.1)."""
    out: list[str] = []
    i = 0
    while i < len(data):
        b = data[i] & 0x7F
        if b == ESC and i + 1 < len(data):
            out.append(_DECODE_EXT.get(data[i + 1] & 0x7F, " "))
            i += 2
            continue
        out.append(_BASIC[b] if b != ESC else " ")
        i += 1
    return "".join(out)


def split_gsm7(text: str, single: int = 160, part: int = 153) -> list[bytes]:
    """Encode and cut into parts of at most `part` septets (one part if it fits `single`);
    an ESC pair moves whole to the next part (digest D2)."""
    data = encode(text)
    if len(data) <= single:
        return [data]
    parts: list[bytes] = []
    start = 0
    while start < len(data):
        end = min(start + part, len(data))
        # Never end a part on the ESC of a pair: count escapes from the start of this part.
        i = start
        while i < end:
            i += 2 if data[i] == ESC else 1
        if i > end:
            end -= 1
        parts.append(data[start:end])
        start = end
    return parts


def split_ucs2(text: str, single: int = 70, part: int = 67) -> list[bytes]:
    """UTF-16-BE, cut into parts of at most `part` code units (one part if it fits `single`);
    a surrogate pair (emoji) is never split (digest D2)."""
    data = text.encode("utf-16-be")
    units = len(data) // 2
    if units <= single:
        return [data]
    parts: list[bytes] = []
    start = 0
    while start < units:
        end = min(start + part, units)
        if end < units:
            last = int.from_bytes(data[2 * (end - 1) : 2 * end], "big")
            if 0xD800 <= last <= 0xDBFF:  # a high surrogate: keep it with its low half
                end -= 1
        parts.append(data[2 * start : 2 * end])
        start = end
    return parts
