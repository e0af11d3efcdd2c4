"""The settings one Twilio SMS channel needs, named as the Twilio Console names them."""

from __future__ import annotations

import re

from pydantic import Field, field_validator, model_validator

from tidings.channels.config_fields import ApiBaseUrl, ChannelConfig

# A sender is an E.164 number, a short code, or an alphanumeric sender id
# (docs/channels/twilio.md#send-api).
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
_SHORT_CODE = re.compile(r"^\d{3,8}$")
_ALPHANUMERIC = re.compile(r"^(?=.*[A-Za-z])[A-Za-z0-9 ]{1,11}$")


class TwilioConfig(ChannelConfig):
    """One Twilio phone number (or Messaging Service) used for SMS/MMS."""

    # Basic-auth user for the REST API; also what every webhook carries as `AccountSid`.
    account_sid: str = Field(pattern=r"^AC[0-9a-fA-F]{32}$")
    # Basic-auth password, and the HMAC-SHA1 key of `X-Twilio-Signature`
    # (docs/channels/twilio.md#request-signature).
    auth_token: str = Field(min_length=1)
    # Send from this number (`From`) ...
    from_number: str | None = None
    # ... or through a Messaging Service (`MessagingServiceSid`), which picks the sender.
    messaging_service_sid: str | None = Field(default=None, pattern=r"^MG[0-9a-fA-F]{32}$")
    # The sandbox points this at the simulator; production leaves the default.
    api_base_url: ApiBaseUrl = "https://api.twilio.com"

    @field_validator("from_number")
    @classmethod
    def _check_sender(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        compact = value.replace(" ", "") if value.startswith("+") else value
        if _E164.match(compact) or _SHORT_CODE.match(compact) or _ALPHANUMERIC.match(compact):
            return compact
        raise ValueError(
            "from_number must be an E.164 number (+14155550100), a short code or an "
            "alphanumeric sender id of at most 11 characters"
        )

    @model_validator(mode="after")
    def _one_sender(self) -> TwilioConfig:
        if not self.from_number and not self.messaging_service_sid:
            raise ValueError("set from_number or messaging_service_sid")
        return self
