"""Response bodies of the media endpoints."""

from __future__ import annotations

from pydantic import BaseModel, Field


class UploadOut(BaseModel):
    id: int
    conversation_id: int
    filename: str | None
    mime_type: str
    size: int


class MediaLimitsOut(BaseModel):
    channel_id: int
    types: dict[str, int] = Field(
        description="MIME type, or a `type/` prefix, -> largest size in bytes"
    )
    refusal: str | None = Field(description="Why this channel cannot send stored files at all")
    caption_refusal: str | None = Field(
        description="Why a file cannot travel with text on this channel (send them apart)"
    )
