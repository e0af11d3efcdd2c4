"""Customer profiles on Messenger and Instagram (docs/channels/messenger.md, "Customer names";
docs/channels/instagram.md, same section).

    Messenger: GET /{version}/{PSID}?fields=first_name,last_name,profile_pic   (Page token)
               -> {"first_name": "Peter", "last_name": "Chang", "profile_pic": "…", "id": "…"}
    Instagram: GET /{version}/{IGSID}?fields=name,username,profile_pic      (account token)
               -> {"name": "Peter Chang", "username": "peter_chang_aw", "profile_pic": "…"}

Either may leave a field out (a person who has not allowed it, a deleted account). Graph errors
come in the usual envelope; 4/17/32/613 (rate limits), 1/2 and 5xx are worth a later retry.
"""

from __future__ import annotations

import httpx
import orjson

from tidings.channels.meta_common import graph_error
from tidings.channels.profiles import Profile, ProfileUnavailable, clean

TIMEOUT = httpx.Timeout(10.0, connect=5.0)
_RETRY_CODES = frozenset({1, 2, 4, 17, 32, 613})


async def fetch(
    url: str, token: str, fields: str, label: str, http: httpx.AsyncClient
) -> dict[str, object]:
    try:
        response = await http.get(
            url,
            params={"fields": fields},
            headers={"Authorization": f"Bearer {token}"},
            timeout=TIMEOUT,
        )
    except httpx.TimeoutException as exc:
        raise ProfileUnavailable(f"{label} did not answer in time", retriable=True) from exc
    except httpx.TransportError as exc:
        raise ProfileUnavailable(f"could not reach {label}", retriable=True) from exc
    if not response.is_success:
        error = graph_error(response)
        retriable = response.status_code >= 500 or error.code in _RETRY_CODES
        raise ProfileUnavailable(
            f"{label} refused the profile: {error.message or response.status_code}",
            retriable=retriable,
        )
    try:
        doc = orjson.loads(response.content)
    except orjson.JSONDecodeError as exc:
        raise ProfileUnavailable(f"{label} answered no JSON", retriable=True) from exc
    if not isinstance(doc, dict):
        raise ProfileUnavailable(f"{label} answered no profile", retriable=False)
    return doc


def messenger_profile(doc: dict[str, object]) -> Profile:
    parts = [clean(doc.get("first_name")), clean(doc.get("last_name"))]
    name = " ".join(p for p in parts if p) or clean(doc.get("name"))
    return Profile(name=name or None)


def instagram_profile(doc: dict[str, object]) -> Profile:
    username = clean(doc.get("username"))
    return Profile(name=clean(doc.get("name")), username=username)
