"""The broadcast storm's exactly-once accounting: what the simulator sent against what the
database holds at the end.

Pure functions over plain data, so that a test can hand them a doubled or a lost status and
see it caught (tests/test_bench_storm_audit.py). The checks:

- every status the simulator posted is stored as exactly one status-lane `inbound_event`
  (key `status:<wamid>:<status>[:<code>]`, the WhatsApp adapter's `split`), none missing,
  none extra, no key twice;
- every one of those rows was applied (`state = done`), none failed or still pending;
- each campaign message's final status is the furthest one the simulator sent, under the
  forward-only rule (queued → sent → delivered → read; failed only from queued or sent);
- every outbound message of the channel is one the simulator accepted, and the reverse;
- each campaign recipient's state follows its message's status, and the campaign's counts
  (`GET /api/v1/campaigns/{id}`) equal a recount of the recipient rows.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

RANK = {"queued": 0, "accepted": 0, "sent": 1, "delivered": 2, "read": 3, "played": 4}
# A recipient's state for its message's status (the campaign follows its messages).
FOLLOWS = {
    "queued": "queued",
    "sent": "sent",
    "delivered": "delivered",
    "read": "read",
    "failed": "failed",
}
SAMPLE = 3  # how many examples a problem line shows


def furthest(statuses: Iterable[str], start: str = "queued") -> str:
    """Where a message ends after these statuses in this order, moving only forward."""
    current = start
    for status in statuses:
        if status == "failed":
            if current in ("queued", "accepted", "sent"):
                current = "failed"
        elif current != "failed" and RANK.get(status, -1) > RANK.get(current, -1):
            current = status
    return current


def parse_key(key: str) -> tuple[str, str] | None:
    """(wamid, status) of a status event key; None for any other key."""
    parts = key.split(":")
    if len(parts) < 3 or parts[0] != "status":
        return None
    return parts[1], parts[2]


@dataclass
class Audit:
    expected: int = 0  # statuses the simulator posted
    stored: int = 0  # status-lane rows in inbound_event
    applied: int = 0  # of those, state done
    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    not_applied: list[str] = field(default_factory=list)  # "key (state)"
    final_mismatch: list[str] = field(default_factory=list)  # "wamid: db X, simulator Y"
    unknown_messages: list[str] = field(default_factory=list)
    unsent_messages: list[str] = field(default_factory=list)
    recipient_mismatch: list[str] = field(default_factory=list)
    counts_mismatch: list[str] = field(default_factory=list)
    given_up: int = 0  # statuses the simulator never got a 200 for
    counts_compared: bool = True

    @property
    def ok(self) -> bool:
        return not self.problems()

    def problems(self) -> list[str]:
        out = []
        for name, items in (
            ("statuses sent but not stored", self.missing),
            ("statuses stored but never sent", self.extra),
            ("status keys stored more than once", self.duplicates),
            ("status events not applied", self.not_applied),
            ("messages whose final status differs", self.final_mismatch),
            ("outbound messages the simulator never accepted", self.unknown_messages),
            ("simulator messages Tidings has no record of", self.unsent_messages),
            ("recipients not following their message", self.recipient_mismatch),
            ("campaign counts that differ from the rows", self.counts_mismatch),
        ):
            if items:
                out.append(f"{name}: {len(items)} (e.g. {', '.join(items[:SAMPLE])})")
        if self.given_up:
            out.append(f"statuses the simulator gave up on: {self.given_up}")
        return out

    def summary(self) -> dict[str, object]:
        return {
            "expected": self.expected,
            "stored": self.stored,
            "applied": self.applied,
            "given_up": self.given_up,
            "counts_compared": self.counts_compared,
            "ok": self.ok,
            "problems": self.problems(),
        }


def audit(
    sim_statuses: Mapping[str, Sequence[str]],
    stored: Sequence[tuple[str, str]],
    db_messages: Mapping[str, str],
    recipients: Sequence[tuple[str, str | None]],
    api_counts: Mapping[str, int] | None,
    *,
    given_up: int = 0,
) -> Audit:
    """`sim_statuses`: each accepted message's statuses in the order the simulator posted
    them; `stored`: (event_key, state) of every status-lane row of the channel, one per row;
    `db_messages`: provider message id → status of the channel's outbound messages;
    `recipients`: (recipient state, its message's status or None) per campaign recipient;
    `api_counts`: the campaign's counts as its API reports them (None: not compared, they
    were still moving)."""
    result = Audit(given_up=given_up)
    expected = {(wamid, st) for wamid, sts in sim_statuses.items() for st in sts}
    result.expected = sum(len(sts) for sts in sim_statuses.values())
    result.stored = len(stored)
    seen: Counter[tuple[str, str]] = Counter()
    for key, state in stored:
        parsed = parse_key(key)
        if parsed is None:
            result.extra.append(key)
            continue
        seen[parsed] += 1
        if state == "done":
            result.applied += 1
        else:
            result.not_applied.append(f"{key} ({state})")
    result.duplicates = [f"status:{w}:{s} x{n}" for (w, s), n in seen.items() if n > 1]
    result.missing += [f"status:{w}:{s}" for w, s in sorted(expected - seen.keys())]
    result.extra += [f"status:{w}:{s}" for w, s in sorted(seen.keys() - expected)]
    for wamid, sts in sim_statuses.items():
        want = furthest(sts)
        have = db_messages.get(wamid)
        if have is None:
            result.unsent_messages.append(wamid)
        elif have != want:
            result.final_mismatch.append(f"{wamid}: db {have}, simulator {want}")
    result.unknown_messages = sorted(set(db_messages) - set(sim_statuses))
    recount: Counter[str] = Counter()
    for state, status in recipients:
        recount[state] += 1
        want_state = FOLLOWS.get(status or "")
        if want_state is not None and state != want_state:
            result.recipient_mismatch.append(f"recipient {state}, message {status}")
    if api_counts is None:
        result.counts_compared = False
        return result
    for state in set(recount) | {k for k in api_counts if k != "total"}:
        if api_counts.get(state, 0) != recount.get(state, 0):
            result.counts_mismatch.append(
                f"{state}: api {api_counts.get(state, 0)}, rows {recount.get(state, 0)}"
            )
    if "total" in api_counts and api_counts["total"] != len(recipients):
        result.counts_mismatch.append(f"total: api {api_counts['total']}, rows {len(recipients)}")
    return result
