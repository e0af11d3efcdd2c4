"""The settings one RCS Business Messaging agent needs."""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from tidings.channels.config_fields import ApiBaseUrl


class RbmConfig(BaseModel):
    """One RBM agent. Authenticate with a service account key (recommended: Tidings mints and
    refreshes OAuth tokens itself) or with a ready `access_token`."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)

    # e.g. "my-agent@rbm.goog"; sent as `agentId` on every call.
    agent_id: str = Field(min_length=1)
    # The client token set on the webhook in the Business Communications console: it keys the
    # X-Goog-Signature HMAC and answers the verification handshake
    # (docs/channels/rbm.md#webhook-and-signature).
    webhook_client_token: str = Field(min_length=1)
    # The JSON key file of a service account with the RBM API enabled.
    service_account_json: str | None = None
    access_token: str | None = None
    api_base_url: ApiBaseUrl = "https://rcsbusinessmessaging.googleapis.com"
    # "TRANSACTION", "PROMOTION", "AUTHENTICATION"... passed through when set.
    message_traffic_type: str | None = None

    @field_validator("service_account_json")
    @classmethod
    def _check_key(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            key: Any = orjson.loads(value)
        except orjson.JSONDecodeError:
            raise ValueError("service_account_json must be the JSON key file's content") from None
        missing = [
            k
            for k in ("client_email", "private_key", "token_uri")
            if not isinstance(key, dict) or not key.get(k)
        ]
        if missing:
            raise ValueError(f"service_account_json lacks {', '.join(missing)}")
        return value

    @model_validator(mode="after")
    def _one_credential(self) -> RbmConfig:
        if not self.service_account_json and not self.access_token:
            raise ValueError("give service_account_json (recommended) or access_token")
        return self
