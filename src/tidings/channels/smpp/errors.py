"""submit_sm_resp command_status values mapped to outcomes with plain sentences
(docs/channels/smpp.md#command-status-codes)."""

from __future__ import annotations

from tidings.channels.base import Permanent, Retriable
from tidings.channels.smpp.pdu import Status, status_name

_RETRIABLE: dict[int, tuple[str, float | None]] = {
    Status.RTHROTTLED: ("The SMSC is throttling this account; the message will be retried.", 1.0),
    Status.RMSGQFUL: ("The SMSC's queue for this number is full; retrying later.", 30.0),
    Status.RSYSERR: ("The SMSC had a system error; the message will be retried.", 10.0),
    Status.RINVBNDSTS: ("The SMPP session was not bound; retrying after it reconnects.", None),
    Status.RX_T_APPN: ("The SMSC reported a temporary error; retrying.", 10.0),
}

_PERMANENT: dict[int, str] = {
    Status.RINVDSTADR: "The SMSC rejected the destination number.",
    Status.RINVSRCADR: "The SMSC does not allow this sender number or id.",
    Status.RINVMSGLEN: "The SMSC rejected the message length.",
    Status.RINVESMCLASS: "The SMSC rejected the message type (esm_class).",
    Status.RSUBMITFAIL: "The SMSC refused the message.",
    Status.RINVEXPIRY: "The SMSC rejected the message's validity period.",
    Status.RDELIVERYFAILURE: "The SMSC could not deliver the message.",
}


def submit_outcome(status: int) -> Retriable | Permanent:
    code = status_name(status)
    if status in _RETRIABLE:
        sentence, after = _RETRIABLE[status]
        return Retriable(sentence, retry_after=after, code=code)
    sentence = _PERMANENT.get(status, f"The SMSC refused the message ({code}).")
    return Permanent(sentence, code=code)


# Receipt `stat:` words (docs/channels/smpp.md#delivery-receipts) with the reason shown when the
# message failed.
RECEIPT_FAILURES = {
    "EXPIRED": "The message expired before the phone could be reached.",
    "DELETED": "The SMSC deleted the message before delivery.",
    "UNDELIV": "The carrier could not deliver the message.",
    "REJECTD": "The carrier rejected the message.",
}
