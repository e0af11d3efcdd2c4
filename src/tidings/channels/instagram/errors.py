"""Instagram uses the Messenger Platform's Graph errors (docs/channels/instagram.md#sending),
plus a window subcode seen in client code and not in Meta's reference (10 / 2534022;
docs/channels/instagram.md#window-and-tags)."""

from __future__ import annotations

from tidings.channels.base import Permanent, Retriable
from tidings.channels.meta_common import GraphError
from tidings.channels.meta_common.messaging_errors import outcome_for as messenger_outcome

WINDOW_CLOSED = (
    "The 24-hour Instagram window has closed: the customer has not written in the last 24 "
    "hours. A person may still reply for up to 7 days if the Human Agent feature is enabled."
)


def outcome_for(error: GraphError) -> Retriable | Permanent:
    if error.code == 10 and error.subcode in (2018278, 2534022):
        return Permanent(WINDOW_CLOSED, code="10")
    return messenger_outcome(error, label="Instagram")
