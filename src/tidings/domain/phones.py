"""Phone numbers in one form (E.164), so one person is one contact across channels."""

from __future__ import annotations

from functools import lru_cache

import phonenumbers


# Parsing and validating costs ~0.3 ms (the ingest worker reads every sender's number); the same
# customers write again and again, and the answer depends only on the arguments.
@lru_cache(maxsize=16384)
def to_e164(raw: str, default_region: str | None = None) -> str | None:
    """E.164 form of `raw`, or None when it is not a valid number.

    Digits without a leading "+" (WhatsApp's wa_id) are read as international.
    """
    text = raw.strip()
    if not text:
        return None
    if default_region is None and not text.startswith("+"):
        digits = "".join(ch for ch in text if ch.isdigit())
        if not digits:
            return None
        text = "+" + digits
    try:
        number = phonenumbers.parse(text, default_region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))


def readable(e164: str) -> str:
    """`+4915112345678` as people write it (`+49 1511 2345678`); unchanged if unparsable."""
    try:
        number = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return e164
    return str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL))
