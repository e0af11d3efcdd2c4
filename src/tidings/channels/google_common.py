"""Google Business Communications mechanics shared by RBM and legacy Business Messages:
the X-Goog-Signature HMAC, the webhook verification handshake, OAuth service-account tokens
and the Google API error shape."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Any

import httpx
import orjson
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from tidings.channels.base import Permanent, Retriable, SendOutcome
from tidings.domain.errors import SignatureError

SIGNATURE_HEADER = "x-goog-signature"


def signature(client_token: str, data: bytes) -> str:
    """base64(HMAC-SHA512(key=clientToken, msg=data))
    (docs/channels/rbm.md#webhook-and-signature)."""
    mac = hmac.new(client_token.encode(), data, hashlib.sha512).digest()
    return base64.b64encode(mac).decode()


def check_signature(client_token: str, headers: Any, data: bytes) -> None:
    given = headers.get(SIGNATURE_HEADER)
    if not given:
        raise SignatureError("missing X-Goog-Signature header")
    if not hmac.compare_digest(signature(client_token, data).encode(), str(given).encode()):
        raise SignatureError("X-Goog-Signature does not match the body")


def verification_secret(client_token: str, body: bytes) -> str | None:
    """The handshake: Google POSTs `{"clientToken": ..., "secret": ...}`; we must check the token
    and answer 200 with the secret as the plain-text body
    (docs/channels/rbm.md#webhook-and-signature).

    Returns the secret when `body` is such a request with our token, None when it is not a
    handshake at all; raises SignatureError for a handshake with the wrong token."""
    if b"clientToken" not in body:
        return None
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(doc, dict) or set(doc) != {"clientToken", "secret"}:
        return None
    token, secret = doc["clientToken"], doc["secret"]
    if not isinstance(token, str) or not isinstance(secret, str):
        raise SignatureError("verification request with a malformed clientToken/secret")
    if not hmac.compare_digest(token.encode(), client_token.encode()):
        raise SignatureError("verification request with the wrong clientToken")
    return secret


# --- OAuth 2.0 service-account tokens (JWT bearer grant, RFC 7523) ------------------------

_TOKENS: dict[tuple[str, str], tuple[str, float]] = {}


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def service_account_assertion(key: dict[str, Any], scope: str, now: float | None = None) -> str:
    """An RS256-signed JWT asserting the service account, for Google's token endpoint."""
    issued = int(now if now is not None else time.time())
    header = {"alg": "RS256", "typ": "JWT", "kid": key.get("private_key_id", "")}
    claims = {
        "iss": key["client_email"],
        "scope": scope,
        "aud": key["token_uri"],
        "iat": issued,
        "exp": issued + 3600,
    }
    signing_input = f"{_b64url(orjson.dumps(header))}.{_b64url(orjson.dumps(claims))}"
    private = serialization.load_pem_private_key(key["private_key"].encode(), password=None)
    if not isinstance(private, rsa.RSAPrivateKey):
        raise ValueError("the service account key is not an RSA key")
    sig = private.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{_b64url(sig)}"


class TokenError(Exception):
    def __init__(self, outcome: Permanent | Retriable) -> None:
        super().__init__(outcome.reason)
        self.outcome = outcome


async def bearer(
    service_account_json: str | None,
    access_token: str | None,
    scope: str,
    http: httpx.AsyncClient,
    product: str,
) -> str:
    """An access token: minted from the service account (cached until 5 minutes before it
    expires) or the configured static token. Raises TokenError with the outcome to report."""
    if not service_account_json:
        assert access_token is not None
        return access_token
    key = orjson.loads(service_account_json)
    cache_key = (key["client_email"], scope)
    cached = _TOKENS.get(cache_key)
    if cached is not None and cached[1] > time.time() + 300:
        return cached[0]
    try:
        resp = await http.post(
            key["token_uri"],
            data={
                "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
                "assertion": service_account_assertion(key, scope),
            },
            timeout=15.0,
        )
    except httpx.HTTPError as exc:
        raise TokenError(
            Retriable(f"Could not reach Google's token service ({type(exc).__name__}).")
        ) from None
    if resp.status_code >= 500:
        raise TokenError(Retriable("Google's token service is unavailable; retrying."))
    try:
        doc = resp.json()
    except ValueError:
        doc = {}
    token = doc.get("access_token") if isinstance(doc, dict) else None
    if resp.status_code != 200 or not isinstance(token, str):
        raise TokenError(
            Permanent(
                f"Google refused the {product} service account key "
                f"({doc.get('error_description') or doc.get('error') or resp.status_code}); "
                "upload a valid key.",
                "oauth",
            )
        )
    expires = doc.get("expires_in")
    _TOKENS[cache_key] = (token, time.time() + (expires if isinstance(expires, int) else 3600))
    return token


def forget_token(service_account_json: str | None, scope: str) -> None:
    if service_account_json:
        key = orjson.loads(service_account_json)
        _TOKENS.pop((key["client_email"], scope), None)


# --- The Google API error shape ----------------------------------------------------------


def error_outcome(resp: httpx.Response, product: str, not_found: str) -> SendOutcome:
    """Map `{"error": {"code", "message", "status"}}` to an outcome with a plain sentence."""
    try:
        doc = resp.json()
    except ValueError:
        doc = {}
    err = doc.get("error") if isinstance(doc, dict) else None
    err = err if isinstance(err, dict) else {}
    status = str(err.get("status") or resp.status_code)
    message = str(err.get("message") or resp.reason_phrase)
    code = resp.status_code
    if code == 429 or status == "RESOURCE_EXHAUSTED":
        wait = resp.headers.get("retry-after", "")
        return Retriable(
            f"{product} is rate-limiting this agent; retrying.",
            float(wait) if wait.isdigit() else 5.0,
            status,
        )
    if code >= 500 or status in ("UNAVAILABLE", "INTERNAL", "DEADLINE_EXCEEDED"):
        return Retriable(f"{product} is having trouble ({status}); retrying.", None, status)
    if code == 401 or status == "UNAUTHENTICATED":
        return Permanent(
            f"{product} rejected the channel's credentials; reconnect the channel.", status
        )
    if code == 403 or status == "PERMISSION_DENIED":
        return Permanent(
            f"This {product} agent is not allowed to do this (is it launched, and is the "
            "service account a partner of the agent?).",
            status,
        )
    if code == 404 or status == "NOT_FOUND":
        return Permanent(not_found, status)
    return Permanent(f"{product} refused the message: {message}", status)
