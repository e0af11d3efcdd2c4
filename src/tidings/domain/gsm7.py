"""GSM 03.38 default alphabet as octets: text to unpacked septets and back.

The policy layer (`tidings.policy.sms`) decides the encoding and cuts the parts; this module is
the wire encoding an SMSC expects for `data_coding` 0 (one septet per octet, unpacked — the way
SMPP carries GSM text, unlike the packed septets of the air interface).
"""

from __future__ import annotations

# The GSM 03.38 basic table (docs/providers/sms-encoding.md#gsm-7-alphabet), by code point
# 0x00-0x7F (0x1B is the escape to the extension table and 0x20.. mostly matches ASCII).
# Lower-case ç is not in it (0x09 is Ç).
BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
# The extension table (docs/providers/sms-encoding.md#gsm-7-alphabet): each character costs
# two septets, ESC (0x1B) + code.
EXTENSION = {
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
assert len(BASIC) == 128

_ENCODE: dict[str, bytes] = {ch: bytes([i]) for i, ch in enumerate(BASIC) if i != 0x1B}
_ENCODE.update({ch: bytes([0x1B, code]) for ch, code in EXTENSION.items()})
_DECODE_EXT = {code: ch for ch, code in EXTENSION.items()}

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
        out.append(BASIC[b] if b != ESC else " ")
        i += 1
    return "".join(out)
