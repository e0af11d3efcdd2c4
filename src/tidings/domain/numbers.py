"""Phone normalisation with a default region (TIDINGS_DEFAULT_REGION), on top of `phones`.

`phones.to_e164` reads digits without "+" as international (WhatsApp's wa_id). SMS providers
and people also write national numbers ("07700 900123"); those are read in the default region
first. A number that cannot be read either way is never guessed at: callers keep it as given.
"""

from __future__ import annotations

import os

import phonenumbers

from tidings.domain.phones import to_e164


def default_region() -> str | None:
    """TIDINGS_DEFAULT_REGION as an ISO 3166 alpha-2 code phonenumbers knows, else None."""
    raw = os.environ.get("TIDINGS_DEFAULT_REGION", "").strip().upper()
    return raw if raw in phonenumbers.SUPPORTED_REGIONS else None


def normalize(raw: str, region: str | None = None) -> str | None:
    """E.164 form of `raw`, or None. National forms are read in `region` (default: the
    configured default region), then digits are tried as an international number."""
    text = raw.strip()
    if not text:
        return None
    if text.startswith("+"):
        return to_e164(text)
    region = region or default_region()
    if region is not None:
        found = to_e164(text, region)
        if found is not None:
            return found
    return to_e164(text)


def region_of(e164: str) -> str | None:
    """ISO region of a valid E.164 number (for price tables), else None."""
    try:
        number = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return None
    region = phonenumbers.region_code_for_number(number)
    return str(region) if region and region != "ZZ" else None
