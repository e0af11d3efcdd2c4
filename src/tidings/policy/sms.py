"""SMS encoding, segments and cost (docs/providers/sms-encoding.md).

`analyse(text)` tells how a carrier will see a message: GSM-7 when every character is in the
GSM 03.38 default alphabet or its extension table, otherwise UCS-2 (UTF-16) for the whole
message; how many parts it travels in (160 septets / 70 units alone, 153 / 67 per part once a
6-octet concatenation header is needed); and which characters forced UCS-2.

Parts are cut the way Twilio's segment calculator cuts them
(docs/providers/sms-encoding.md#segments): by grapheme cluster, so an extension escape pair, a
surrogate pair, a flag, a skin-tone or ZWJ emoji sequence, or a letter with its combining marks
always travels whole in one part. CRLF is two characters there, so it is two here.

National language shift tables (docs/providers/sms-encoding.md#national-language-shift-tables) are
not offered: Twilio and most aggregators do not expose them, and a handset without support renders
base GSM anyway.

Settings (environment; read at call time so operators and tests can change them):
- `TIDINGS_SMS_MAX_SEGMENTS`: refuse sends above this many parts (default 10).
- `TIDINGS_SMS_PRICES`: JSON price table per segment, see `price_table`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Literal

import regex

from tidings.domain import gsm7

Encoding = Literal["GSM-7", "UCS-2"]

# The GSM 03.38 tables (domain/gsm7.py, docs/providers/sms-encoding.md#gsm-7-alphabet): the
# default alphabet, one septet each, and the extension table, ESC (0x1B) + code, two septets each.
GSM_BASIC = frozenset(gsm7.BASIC) - {chr(gsm7.ESC)}
GSM_EXTENSION = frozenset(gsm7.EXTENSION)

SINGLE_BITS = 1120  # 140 octets: 160 septets or 70 UCS-2 units
UDH_BITS = 48  # 6-octet concatenation header, 8-bit reference: 153 septets / 67 units left
MAX_PARTS = 255  # the reference/total/sequence fields are one octet each
DEFAULT_MAX_SEGMENTS = 10

_GRAPHEME = regex.compile(r"\X")

# Twilio Smart Encoding (docs/providers/sms-encoding.md#smart-encoding): look-alike Unicode
# replaced by GSM characters. Our own table from Twilio's description; characters with no entry
# still force UCS-2.
_SMART: dict[str, str] = {
    # curly/angle/fullwidth double quotes; single quotes and primes; hyphens, dashes, bullet
    **dict.fromkeys("\u201c\u201d\u201e\u00ab\u00bb\u2033\u201f\uff02", '"'),
    **dict.fromkeys("\u2018\u2019\u201a\u2032\u201b\u2039\u203a\uff07", "'"),
    **dict.fromkeys("\u2010\u2011\u2012\u2013\u2014\u2015\u2022\u2212", "-"),
    "…": "...",
    "÷": "/",
    "¼": "1/4",
    "½": "1/2",
    "¾": "3/4",
    "‼": "!!",
    # Unicode spaces become a plain space; TAB too (the calculator library maps it to seven
    # spaces; Twilio does not say what its servers do:
    # docs/providers/sms-encoding.md#smart-encoding).
    **dict.fromkeys(
        "\t\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
        "\u202f\u205f\u3000",
        " ",
    ),
    # Invisible characters are dropped.
    **dict.fromkeys("\u0000\u00ad\u200b\u200c\u200d\u2060\ufeff", ""),
}
# Fullwidth ASCII forms U+FF01..U+FF5E map onto ASCII U+0021..U+007E.
_SMART.update({chr(cp): chr(cp - 0xFEE0) for cp in range(0xFF01, 0xFF5F) if chr(cp) not in _SMART})
_SMART_TABLE = str.maketrans(_SMART)


def is_gsm(ch: str) -> bool:
    return ch in GSM_BASIC or ch in GSM_EXTENSION


def ucs2_characters(text: str) -> list[str]:
    """The distinct characters that force UCS-2, in order of first appearance."""
    seen: dict[str, None] = {}
    for ch in text:
        if not is_gsm(ch):
            seen.setdefault(ch, None)
    return list(seen)


def smart_encode(text: str) -> str:
    """Replace look-alikes with GSM characters (docs/providers/sms-encoding.md#smart-encoding),
    only when that makes the whole message GSM-7; otherwise the text is left as the agent wrote
    it (a partial replacement would change their words without saving a part)."""
    replaced = text.translate(_SMART_TABLE)
    return replaced if all(is_gsm(ch) for ch in replaced) else text


def _units(grapheme: str, encoding: Encoding) -> int:
    """Septets (GSM-7) or UTF-16 code units (UCS-2) one grapheme costs."""
    if encoding == "GSM-7":
        return sum(2 if ch in GSM_EXTENSION else 1 for ch in grapheme)
    return len(grapheme.encode("utf-16-le")) // 2


def _graphemes(text: str) -> list[str]:
    clusters: list[str] = []
    for g in _GRAPHEME.findall(text):
        # The calculator counts CRLF as two characters (docs/providers/sms-encoding.md#segments).
        clusters.extend(("\r", "\n") if g == "\r\n" else (g,))
    return clusters


@dataclass(frozen=True, slots=True)
class Part:
    text: str
    # Septets for GSM-7, UTF-16 code units for UCS-2.
    units: int


@dataclass(frozen=True, slots=True)
class SmsAnalysis:
    text: str  # what would be sent (after smart encoding, if asked and useful)
    encoding: Encoding
    characters: int  # Unicode code points
    units: int  # septets or UTF-16 units of the whole message
    ucs2_characters: list[str]
    parts: list[Part]
    smart_encoded: bool

    @property
    def segments(self) -> int:
        return len(self.parts)

    @property
    def unit_bits(self) -> int:
        return 7 if self.encoding == "GSM-7" else 16

    @property
    def per_part(self) -> int:
        """Capacity of each part in units: 160/70 alone, 153/67 once concatenated."""
        bits = SINGLE_BITS if self.segments <= 1 else SINGLE_BITS - UDH_BITS
        return bits // self.unit_bits


def _split_oversized(grapheme: str, encoding: Encoding, capacity: int) -> list[str]:
    """A cluster larger than one part (a very long ZWJ or combining run) has to be cut; cut it
    between code points, so surrogate pairs and escape pairs still stay whole."""
    pieces: list[str] = []
    current, used = "", 0
    for ch in grapheme:
        cost = _units(ch, encoding)
        if used + cost > capacity and current:
            pieces.append(current)
            current, used = "", 0
        current += ch
        used += cost
    if current:
        pieces.append(current)
    return pieces


def analyse(text: str, *, smart_encoding: bool = False) -> SmsAnalysis:
    original = text
    if smart_encoding:
        text = smart_encode(text)
    forcing = ucs2_characters(text)
    encoding: Encoding = "UCS-2" if forcing else "GSM-7"
    unit_bits = 16 if forcing else 7
    graphemes = _graphemes(text)
    costs = [_units(g, encoding) for g in graphemes]
    total = sum(costs)
    parts: list[Part] = []
    if total * unit_bits <= SINGLE_BITS:
        if text:
            parts.append(Part(text, total))
    else:
        capacity = (SINGLE_BITS - UDH_BITS) // unit_bits
        current: list[str] = []
        used = 0
        for g, cost in zip(graphemes, costs, strict=True):
            pieces = [g] if cost <= capacity else _split_oversized(g, encoding, capacity)
            for piece in pieces:
                piece_cost = _units(piece, encoding) if len(pieces) > 1 else cost
                if used + piece_cost > capacity:
                    parts.append(Part("".join(current), used))
                    current, used = [], 0
                current.append(piece)
                used += piece_cost
        if current:
            parts.append(Part("".join(current), used))
    return SmsAnalysis(
        text=text,
        encoding=encoding,
        characters=len(text),
        units=total,
        ucs2_characters=forcing,
        parts=parts,
        smart_encoded=smart_encoding and text != original,
    )


# --- settings -------------------------------------------------------------------------------


def max_segments() -> int:
    raw = os.environ.get("TIDINGS_SMS_MAX_SEGMENTS", "").strip()
    if raw.isdigit() and 0 < int(raw) <= MAX_PARTS:
        return int(raw)
    return DEFAULT_MAX_SEGMENTS


# Price per segment by channel kind and destination region (ISO 3166 alpha-2, "*" = any other).
# The one default is Twilio's long-standing US list price for an outbound SMS segment; every
# contract differs, so operators set their own table in TIDINGS_SMS_PRICES.
DEFAULT_PRICES: dict[str, dict[str, str]] = {"twilio": {"US": "0.0079"}}
DEFAULT_CURRENCY = "USD"


@dataclass(frozen=True, slots=True)
class PriceTable:
    currency: str
    prices: Mapping[str, Mapping[str, Decimal]]

    def per_segment(self, kind: str, region: str | None) -> Decimal | None:
        table = self.prices.get(kind)
        if table is None:
            return None
        if region is not None and region.upper() in table:
            return table[region.upper()]
        return table.get("*")


class PriceTableError(ValueError):
    pass


def parse_price_table(raw: str) -> PriceTable:
    """`{"currency": "USD", "twilio": {"US": "0.0079", "GB": "0.0463", "*": "0.05"}, ...}`."""
    try:
        doc = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise PriceTableError(f"TIDINGS_SMS_PRICES is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise PriceTableError("TIDINGS_SMS_PRICES must be a JSON object")
    currency = doc.pop("currency", DEFAULT_CURRENCY)
    if not isinstance(currency, str) or len(currency) != 3:
        raise PriceTableError("TIDINGS_SMS_PRICES.currency must be a 3-letter code")
    prices: dict[str, dict[str, Decimal]] = {}
    for kind, table in doc.items():
        if not isinstance(table, dict):
            raise PriceTableError(f"TIDINGS_SMS_PRICES.{kind} must map regions to prices")
        prices[kind] = {}
        for region, price in table.items():
            try:
                value = Decimal(str(price))
            except InvalidOperation:
                raise PriceTableError(
                    f"TIDINGS_SMS_PRICES.{kind}.{region} is not a number"
                ) from None
            if not value.is_finite() or value < 0:
                raise PriceTableError(f"TIDINGS_SMS_PRICES.{kind}.{region} must be >= 0")
            prices[kind][str(region).upper()] = value
    return PriceTable(currency.upper(), prices)


def price_table() -> PriceTable:
    """TIDINGS_SMS_PRICES when set (replacing the defaults), else DEFAULT_PRICES."""
    raw = os.environ.get("TIDINGS_SMS_PRICES", "").strip()
    if raw:
        return parse_price_table(raw)
    return PriceTable(
        DEFAULT_CURRENCY,
        {k: {r: Decimal(p) for r, p in t.items()} for k, t in DEFAULT_PRICES.items()},
    )


def estimate_cost(
    analysis: SmsAnalysis, kind: str, region: str | None, table: PriceTable | None = None
) -> tuple[Decimal, str] | None:
    """Segments times the per-segment price for this kind and destination, or None if unknown."""
    table = table or price_table()
    price = table.per_segment(kind, region)
    if price is None:
        return None
    return price * analysis.segments, table.currency
