"""The settings one RCS Business Messaging agent needs."""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import field_validator

from tidings.channels.config_fields import ApiBaseUrl
from tidings.channels.google_common import AgentConfig


class RbmConfig(AgentConfig):
    """One RBM agent. Authenticate with a service account key (recommended: Tidings mints and
    refreshes OAuth tokens itself) or with a ready `access_token`."""

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
