"""Vonage SMS API request signatures (the `sig` parameter), both directions.

Per Vonage's "Signing Messages" guide and its SDKs: take every parameter except `sig`, sorted by
name; in each value replace `&` and `=` with `_`; concatenate as `&name=value`. "MD5 hash" is the
MD5 of that string followed by the signature secret; the HMAC methods key the HMAC of the string
with the secret. Hex digest; SDKs differ in case (.NET upper, Python lower), so compare
case-insensitively.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

_HMAC = {
    "md5": hashlib.md5,
    "sha1": hashlib.sha1,
    "sha256": hashlib.sha256,
    "sha512": hashlib.sha512,
}


def signing_string(params: Mapping[str, str]) -> str:
    parts = []
    for name in sorted(params):
        if name == "sig":
            continue
        value = params[name].replace("&", "_").replace("=", "_")
        parts.append(f"&{name}={value}")
    return "".join(parts)


def sign(params: Mapping[str, str], secret: str, method: str) -> str:
    text = signing_string(params).encode()
    if method == "md5hash":
        return hashlib.md5(text + secret.encode(), usedforsecurity=False).hexdigest()
    try:
        digest = _HMAC[method]
    except KeyError:
        raise ValueError(f"unknown signature method {method!r}") from None
    return hmac.new(secret.encode(), text, digest).hexdigest()


def matches(params: Mapping[str, str], secret: str, method: str) -> bool:
    given = params.get("sig", "")
    return bool(given) and hmac.compare_digest(given.lower(), sign(params, secret, method))
