"""Files an agent uploaded to Tidings, sent on Messenger and Instagram through Meta's
Attachment Upload API (docs/channels/messenger.md#attachment-upload,
docs/channels/instagram.md#media-formats):

    POST /{version}/{page-id}/message_attachments   (multipart)
      message={"attachment": {"type": "image", "payload": {"is_reusable": true}}}
      filedata=@file;type=image/png        (+ platform=instagram for Instagram)
    -> {"attachment_id": "1857777774821032"}

The message is then sent with `payload.attachment_id`. Only the Facebook Login flavour of
Instagram has this API; "media must be reachable URLs (or attachment ids)" otherwise.
"""

from __future__ import annotations

import logging
from dataclasses import replace

import httpx
import orjson

from tidings.channels.base import OutboundMessage, Permanent, Retriable
from tidings.channels.meta_common import graph_error

log = logging.getLogger(__name__)

TIMEOUT = httpx.Timeout(60.0, connect=5.0)
# Our attachment kinds -> the Send API's (documents travel as `file`).
_TYPES = {"image": "image", "audio": "audio", "video": "video", "document": "file", "file": "file"}


def caption_refusal(label: str, with_text: bool) -> str | None:
    if with_text:
        # The Send API takes text or an attachment in one message, not both
        # (docs/channels/messenger.md#send-api).
        return f"{label} cannot send text with a file: send the text as its own message."
    return None


async def with_uploads(
    message: OutboundMessage,
    *,
    upload_url: str,
    token: str,
    http: httpx.AsyncClient,
    label: str,
    platform: str | None = None,
) -> OutboundMessage | Retriable | Permanent:
    """`message` with every stored file uploaded and referenced by attachment id."""
    if not any(a.load and not (a.url or a.provider_media_id) for a in message.attachments):
        return message
    done = []
    for att in message.attachments:
        if att.load is None or att.url or att.provider_media_id:
            done.append(att)
            continue
        kind = _TYPES.get(att.kind)
        if kind is None:
            return Permanent(f"{label} cannot send a {att.kind!r} file.")
        data = {
            "message": orjson.dumps(
                {"attachment": {"type": kind, "payload": {"is_reusable": True}}}
            ).decode()
        }
        if platform:
            data["platform"] = platform
        mime = att.mime_type or "application/octet-stream"
        try:
            response = await http.post(
                upload_url,
                data=data,
                files={"filedata": (att.filename or "file", await att.load(), mime)},
                headers={"Authorization": f"Bearer {token}"},
                timeout=TIMEOUT,
            )
        except httpx.TimeoutException:
            return Retriable(f"{label} did not answer the file upload in time; will retry.")
        except httpx.TransportError as exc:
            log.warning("%s attachment upload transport error: %r", label, exc)
            return Retriable(f"Could not reach {label} to upload the file; will retry.")
        if response.status_code >= 500 or response.status_code == 429:
            return Retriable(f"{label} could not take the file now; will retry.")
        if not response.is_success:
            error = graph_error(response)
            return Permanent(f"{label} refused the file: {error.message or response.status_code}")
        try:
            attachment_id = orjson.loads(response.content).get("attachment_id")
        except (orjson.JSONDecodeError, AttributeError):
            attachment_id = None
        if not isinstance(attachment_id, str | int) or isinstance(attachment_id, bool):
            return Permanent(f"{label} accepted the file but returned no attachment id.")
        done.append(replace(att, provider_media_id=str(attachment_id), load=None))
    return replace(message, attachments=tuple(done))
