"""SMS encoding and segments against the reference strings of Twilio's segment
calculator tests (docs/providers/sms-encoding.md#reference-strings); plus smart encoding
(docs/providers/sms-encoding.md#smart-encoding) and cost."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tidings.policy import sms

D = "0123456789" * 20  # digits, as the calculator's tests use

# (message, encoding, segments)
D3 = [
    ("Hello world", "GSM-7", 1),
    ("a" * 160, "GSM-7", 1),
    (D[:160], "GSM-7", 1),
    ("a" * 161, "GSM-7", 2),
    (D[:161], "GSM-7", 2),
    ("a" * 306, "GSM-7", 2),
    ("a" * 307, "GSM-7", 3),
    ("a" * 459, "GSM-7", 3),
    ("a" * 460, "GSM-7", 4),
    ("€" * 80, "GSM-7", 1),
    ("€" * 81, "GSM-7", 2),
    *[(ch + D[:158], "GSM-7", 1) for ch in "|^€{}[]~\\"],
    *[(ch + D[:159], "GSM-7", 2) for ch in "|^€{}[]~\\"],
    ("a" * 152 + "{" + "a" * 10, "GSM-7", 2),
    ("Ç" * 160, "GSM-7", 1),
    ("ü" * 160, "GSM-7", 1),
    ("\f" * 80, "GSM-7", 1),
    ("ç", "UCS-2", 1),
    ("你" * 70, "UCS-2", 1),
    ("你" * 71, "UCS-2", 2),
    ("你" * 134, "UCS-2", 2),
    ("你" * 135, "UCS-2", 3),
    *[(ch * 70, "UCS-2", 1) for ch in "áÁÚúçíÍóÓ"],
    *[(ch * 71, "UCS-2", 2) for ch in "áÁÚúçíÍóÓ"],
    ("😜" + D[:68], "UCS-2", 1),
    ("😜" + D[:69], "UCS-2", 2),
    ("😜" + D[:133], "UCS-2", 3),
    ("😀" * 35, "UCS-2", 1),
    ("😀" * 36, "UCS-2", 2),
    ("a" * 66 + "😀" + "aaa", "UCS-2", 2),
    ("🇮🇹" + D[:66], "UCS-2", 1),
    ("🇮🇹" + D[:67], "UCS-2", 2),
    ("🏳️‍🌈" + D[:64], "UCS-2", 1),
    ("🏳️‍🌈" + D[:65], "UCS-2", 2),
    ("😀" + "]" * 68, "UCS-2", 1),
    ("😀" + "]" * 69, "UCS-2", 2),
    ("e\u0301\u0301\u0301" + "a" * 66, "UCS-2", 1),
    ("e\u0301\u0301\u0301" + "a" * 67, "UCS-2", 2),
    ("It’s here", "UCS-2", 1),
]


@pytest.mark.parametrize(
    ("text", "encoding", "segments"), D3, ids=[f"d3-{i}" for i in range(len(D3))]
)
def test_reference_strings(text: str, encoding: str, segments: int) -> None:
    result = sms.analyse(text)
    assert (result.encoding, result.segments) == (encoding, segments)
    # The parts put back together are the message, and none is over its capacity.
    assert "".join(p.text for p in result.parts) == text
    assert all(p.units <= result.per_part for p in result.parts)


def test_part_boundaries_keep_clusters_whole() -> None:
    # 307 digits: 153 + 153 + 1 (the last part holds one character).
    assert [p.units for p in sms.analyse(D[:7] * 43 + D[:6]).parts] == [153, 153, 1]
    # The escape pair moves whole into part 2 (152 septets in part 1).
    parts = sms.analyse("a" * 152 + "{" + "a" * 10).parts
    assert [p.units for p in parts] == [152, 12]
    assert parts[1].text.startswith("{")
    # The emoji is not split: part 1 holds 66 units.
    parts = sms.analyse("a" * 66 + "😀" + "aaa").parts
    assert [p.units for p in parts] == [66, 5]
    # 😜 + 133 digits: 67 + 67 + 1 units.
    assert [p.units for p in sms.analyse("😜" + D[:133]).parts] == [67, 67, 1]
    # A flag (4 units) and a rainbow flag ZWJ sequence (6 units) move whole to the next part.
    flags = sms.analyse("a" * 65 + "🇮🇹" + "🏳️‍🌈" * 12).parts
    assert flags[0].text == "a" * 65 and flags[1].text.startswith("🇮🇹")
    skin = sms.analyse("a" * 64 + "👍🏽" + "b" * 10).parts
    assert skin[0].units == 64 and skin[1].text.startswith("👍🏽")


def test_ucs2_characters_and_counts() -> None:
    result = sms.analyse("Olá, ça va? 😀 ça")
    assert result.ucs2_characters == ["á", "ç", "😀"]
    assert result.characters == len("Olá, ça va? 😀 ça")
    assert result.units == len("Olá, ça va? 😀 ça") + 1  # the emoji is a surrogate pair
    gsm = sms.analyse("[price] 5€")
    assert (
        gsm.ucs2_characters == [] and gsm.units == 13
    )  # 10 characters; [ ] € count two septets each
    # CRLF counts as two characters.
    assert sms.analyse("a\r\nb").units == 4
    assert sms.analyse("").segments == 0


def test_smart_encoding() -> None:
    plain = sms.analyse("It’s here", smart_encoding=True)
    assert (plain.encoding, plain.text, plain.smart_encoded) == ("GSM-7", "It's here", True)
    fancy = sms.analyse("“Quotes” – dashes… ½ ‼ ＡＢＣ\u00a0ok\u200b", smart_encoding=True)
    assert fancy.encoding == "GSM-7"
    assert fancy.text == '"Quotes" - dashes... 1/2 !! ABC ok'
    # No mapping for ç or emoji: nothing is replaced, the message stays as written.
    kept = sms.analyse("It’s ça 😀", smart_encoding=True)
    assert (kept.encoding, kept.text, kept.smart_encoded) == ("UCS-2", "It’s ça 😀", False)
    # 70 curly apostrophes: 1 UCS-2 part; smart-encoded they are 70 septets, still 1 part.
    assert sms.analyse("’" * 71, smart_encoding=True).segments == 1
    assert sms.analyse("’" * 71).segments == 2


def test_cost_from_default_and_custom_tables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TIDINGS_SMS_PRICES", raising=False)
    two = sms.analyse("a" * 161)
    assert sms.estimate_cost(two, "twilio", "US") == (Decimal("0.0158"), "USD")
    assert sms.estimate_cost(two, "twilio", "DE") is None
    assert sms.estimate_cost(two, "vonage", "US") is None
    monkeypatch.setenv(
        "TIDINGS_SMS_PRICES", '{"currency": "eur", "vonage": {"de": "0.07", "*": 0.1}}'
    )
    assert sms.estimate_cost(two, "vonage", "DE") == (Decimal("0.14"), "EUR")
    assert sms.estimate_cost(two, "vonage", "FR") == (Decimal("0.2"), "EUR")
    assert sms.estimate_cost(two, "twilio", "US") is None  # the custom table replaces defaults
    for bad in ("not json", "[]", '{"twilio": {"US": "abc"}}', '{"twilio": {"US": -1}}'):
        with pytest.raises(sms.PriceTableError):
            sms.parse_price_table(bad)


def test_max_segments_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TIDINGS_SMS_MAX_SEGMENTS", raising=False)
    assert sms.max_segments() == 10
    monkeypatch.setenv("TIDINGS_SMS_MAX_SEGMENTS", "3")
    assert sms.max_segments() == 3
    monkeypatch.setenv("TIDINGS_SMS_MAX_SEGMENTS", "nonsense")
    assert sms.max_segments() == 10
