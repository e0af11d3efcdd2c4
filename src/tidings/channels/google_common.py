"""Google Business Communications mechanics shared by RBM and legacy Business Messages:
the agent's config and adapter basics, the X-Goog-Signature HMAC, the webhook verification
handshake, OAuth service-account tokens, authorised API calls and the Google API error shape."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from datetime import UTC, datetime
from typing import Any, ClassVar, TypeVar

import httpx
import orjson
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from pydantic import Field, model_validator

from tidings.channels.base import (
    Adapter,
    Permanent,
    Retriable,
    SendOutcome,
    WebhookReply,
    WebhookRequest,
    check_secret,
)
from tidings.channels.config_fields import ChannelConfig
from tidings.domain.enums import MessageStatus
from tidings.domain.errors import SignatureError

SIGNATURE_HEADER = "x-goog-signature"
# The receipt types both products report (RBM `eventType`, Business Messages `receiptType`).
RECEIPTS = {"DELIVERED": MessageStatus.DELIVERED, "READ": MessageStatus.READ}
TIMEOUT = 15.0


class AgentConfig(ChannelConfig):
    """What every Business Communications agent is configured with. Authenticate with a service
    account key (recommended: Tidings mints and refreshes OAuth tokens itself) or with a ready
    `access_token`."""

    # RBM: e.g. "my-agent@rbm.goog", sent as `agentId`; Business Messages: the `agents/{id}` part
    # of the agent's name.
    agent_id: str = Field(min_length=1)
    # The client token (partner key) set on the webhook in the Business Communications console:
    # it keys the X-Goog-Signature HMAC and answers the verification handshake
    # (docs/channels/rbm.md#webhook-and-signature, docs/channels/gbm.md#webhook).
    webhook_client_token: str = Field(min_length=1)
    # The JSON key file of a service account with the product's API enabled.
    service_account_json: str | None = None
    access_token: str | None = None

    @model_validator(mode="after")
    def _one_credential(self) -> AgentConfig:
        if not self.service_account_json and not self.access_token:
            raise ValueError("give service_account_json (recommended) or access_token")
        return self


AgentConfigT = TypeVar("AgentConfigT", bound=AgentConfig)


class AgentAdapter(Adapter[AgentConfigT]):
    """The adapter basics RBM and Business Messages share: no GET handshake (Google verifies a
    webhook with a POST), the secrets, and the acknowledgement that answers that POST."""

    secret_fields: ClassVar[frozenset[str]] = frozenset(
        {"webhook_client_token", "service_account_json", "access_token"}
    )

    def ack(self, config: Any, request: WebhookRequest) -> WebhookReply:
        secret = verification_secret(self.cfg(config).webhook_client_token, request.body)
        if secret is not None:
            # Verification: answer 200 with the secret as plain text
            # (docs/channels/rbm.md#webhook-and-signature).
            return WebhookReply(200, secret.encode(), "text/plain")
        return WebhookReply(200, b"")


def timestamp(value: Any) -> datetime | None:
    """An RFC 3339 time with up to nanoseconds ("2024-05-01T10:00:00.123456789Z"), or None."""
    if not isinstance(value, str):
        return None
    try:
        head, _, frac = value.rstrip("Z").partition(".")
        parsed = datetime.fromisoformat(head + (f".{frac[:6]}" if frac else ""))
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed


def signature(client_token: str, data: bytes) -> str:
    """base64(HMAC-SHA512(key=clientToken, msg=data))
    (docs/channels/rbm.md#webhook-and-signature)."""
    mac = hmac.new(client_token.encode(), data, hashlib.sha512).digest()
    return base64.b64encode(mac).decode()


def check_signature(client_token: str, headers: Any, data: bytes) -> None:
    check_secret(
        headers.get(SIGNATURE_HEADER),
        signature(client_token, data),
        "missing X-Goog-Signature header",
        "X-Goog-Signature does not match the body",
    )


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


async def call(
    config: AgentConfig,
    http: httpx.AsyncClient,
    scope: str,
    product: str,
    method: str,
    url: str,
    params: dict[str, str] | None = None,
    body: dict[str, Any] | None = None,
    timed_out: str | None = None,
) -> httpx.Response | SendOutcome:
    """One call with the agent's bearer token: the response, or the outcome to record when there
    is none (token refused, Google unreachable; `timed_out` is the sentence for a timeout)."""
    try:
        token = await bearer(config.service_account_json, config.access_token, scope, http, product)
        resp = await http.request(
            method,
            url,
            params=params,
            json=body,
            headers={"Authorization": f"Bearer {token}"},
            timeout=TIMEOUT,
        )
    except TokenError as exc:
        return exc.outcome
    except httpx.HTTPError as exc:
        if timed_out is not None and isinstance(exc, httpx.TimeoutException):
            return Retriable(timed_out)
        return Retriable(f"Could not reach {product} ({type(exc).__name__}).")
    if resp.status_code == 401:
        # A minted token may have been revoked early: mint a fresh one next time.
        forget_token(config.service_account_json, scope)
    return resp


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
