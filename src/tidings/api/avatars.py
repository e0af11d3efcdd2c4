"""`GET /api/v1/contacts/{id}/picture`: the customer's profile picture where their channel gave
one (LINE `pictureUrl`, Viber `avatar`, kept as the contact's `picture_url` attribute by the
profiles worker), served from Tidings' own origin so the pages' CSP (`img-src 'self'`) holds
and agents' browsers never contact the provider's CDN. Fetched through the egress policy
(`egress.py`: no private addresses, every redirect checked), only JPEG/PNG/WebP/GIF, at most
512 KB; anything else is a 404 and the page shows the initials."""

from __future__ import annotations

import httpx
from fastapi import APIRouter, Response

from tidings.access import require_contact
from tidings.api.deps import RT, Who
from tidings.domain.errors import NotFound
from tidings.egress import EgressRefused, read_limited

router = APIRouter(prefix="/api/v1", tags=["contacts"])

PICTURE_TYPES = frozenset({"image/jpeg", "image/png", "image/webp", "image/gif"})
MAX_PICTURE_BYTES = 512 * 1024
TIMEOUT = httpx.Timeout(5.0)


def picture_path(contact_id: int, attributes: object) -> str | None:
    """The same-origin address of a contact's picture, or None when the channel gave none."""
    url = attributes.get("picture_url") if isinstance(attributes, dict) else None
    if isinstance(url, str) and url.startswith(("https://", "http://")):
        return f"/api/v1/contacts/{contact_id}/picture"
    return None


@router.get(
    "/contacts/{contact_id}/picture",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}, "image/png": {}}}, 404: {}},
)
async def contact_picture(contact_id: int, who: Who, rt: RT) -> Response:
    """The contact's profile picture from their channel, or 404 (show initials)."""
    async with rt.db.read() as s:
        contact = await require_contact(s, who, contact_id)
        url = (contact.attributes or {}).get("picture_url")
    if picture_path(contact_id, contact.attributes) is None or not isinstance(url, str):
        raise NotFound("this contact has no picture")
    try:
        async with rt.egress.stream("GET", url, timeout=TIMEOUT) as resp:
            kind = resp.headers.get("content-type", "").split(";")[0].strip().lower()
            if resp.status_code != 200 or kind not in PICTURE_TYPES:
                raise NotFound("the channel has no picture for this contact now")
            body = await read_limited(resp, MAX_PICTURE_BYTES + 1)
    except (EgressRefused, httpx.HTTPError):
        raise NotFound("the picture could not be fetched") from None
    if len(body) > MAX_PICTURE_BYTES:
        raise NotFound("the picture is too large to show")
    return Response(
        body,
        media_type=kind,
        headers={
            "Cache-Control": "private, max-age=3600",
            "Content-Security-Policy": "default-src 'none'; sandbox",
            "X-Content-Type-Options": "nosniff",
        },
    )
