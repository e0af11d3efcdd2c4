"""The settings one SMPP 3.4 account (an ESME bind to an SMSC) needs, named as SMPP names them."""

from __future__ import annotations

from pydantic import Field

from tidings.channels.config_fields import ChannelConfig


class SmppConfig(ChannelConfig):
    host: str = Field(min_length=1)
    # 2775 is the conventional SMPP port (docs/channels/smpp.md#pdus); SMSCs often use others.
    port: int = Field(default=2775, ge=1, le=65535)
    # Field limits are the SMPP 3.4 C-octet string sizes less the NUL.
    system_id: str = Field(min_length=1, max_length=15)
    password: str = Field(max_length=8)
    system_type: str = Field(default="", max_length=12)
    # The number (or short code / alphanumeric id) messages come from.
    source_addr: str = Field(min_length=1, max_length=20)
    # TON 1 / NPI 1: international E.164; alphanumeric senders use TON 5, NPI 0.
    source_addr_ton: int = Field(default=1, ge=0, le=6)
    source_addr_npi: int = Field(default=1, ge=0, le=18)
    dest_addr_ton: int = Field(default=1, ge=0, le=6)
    dest_addr_npi: int = Field(default=1, ge=0, le=18)
    # Long messages: concatenation UDH (esm_class 0x40) by default, else SAR TLVs.
    use_udh: bool = True
    registered_delivery: bool = True
    enquire_link_seconds: float = Field(default=30.0, gt=0)
    response_timeout_seconds: float = Field(default=10.0, gt=0)
    reconnect_min_seconds: float = Field(default=1.0, gt=0)
    reconnect_max_seconds: float = Field(default=60.0, gt=0)
    # How long a send waits for the bind to come (back) up before it is retried later.
    send_wait_seconds: float = Field(default=10.0, ge=0)

    def account_key(self) -> tuple[str, int, str, str]:
        """One bind per SMSC account; sends find their session by this key."""
        return (self.host.lower(), self.port, self.system_id, self.system_type)
