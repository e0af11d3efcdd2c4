"""What the adapters' config models share: their base model, field types (each provider's
model names the rule instead of repeating its validator) and reading a stored config into its
model."""

from __future__ import annotations

import re
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict

ConfigT = TypeVar("ConfigT", bound=BaseModel)


class ChannelConfig(BaseModel):
    """The base of every kind's config model: immutable, no unknown keys (a typo is refused,
    not ignored), surrounding whitespace of pasted values trimmed."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)


def _api_base_url(value: str) -> str:
    if not value.startswith(("http://", "https://")):
        raise ValueError("api_base_url must start with http:// or https://")
    return value.rstrip("/")


_GRAPH_VERSION = re.compile(r"^v\d+\.\d+$")


def _graph_version(value: str) -> str:
    if not _GRAPH_VERSION.match(value):
        raise ValueError("api_version looks like v25.0")
    return value


# The provider's API host: the sandbox points it at the simulator; no trailing slash.
ApiBaseUrl = Annotated[str, AfterValidator(_api_base_url)]
# A Meta Graph API version (`v25.0`), the path prefix of every Graph call.
GraphVersion = Annotated[str, AfterValidator(_graph_version)]


def config_as(model: type[ConfigT], config: Any) -> ConfigT:
    """`config` (the stored dict, or the model already) as the adapter's config model."""
    return config if isinstance(config, model) else model.model_validate(config)
