"""Feature packages plan and evaluate; `actions/` writes (issue #17 item 3).

The campaign and automation packages must not build or insert rows of the tables agents see
(messages, conversations, deliveries, contacts and their identities, rules, business hours):
those go through `actions/` — one outbound write path (`actions.outbound`), one system-line
helper, `actions.phone_contacts`, `actions.automation` — so a rule about them lives in one
place. Their own bookkeeping (recipients, rule runs, timers, the rule-event outbox) stays
theirs. This scans the source for constructor calls and inserts of the agents' tables.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import tidings

SRC = Path(tidings.__file__).parent
FEATURES = ("campaigns", "automation")
TABLES = {
    "Message",
    "Conversation",
    "ConversationLabel",
    "Label",
    "Delivery",
    "Contact",
    "ContactIdentity",
    "AutomationRule",
    "InboxBusinessHours",
}


def _name(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def writes(source: str) -> list[tuple[int, str]]:
    """(line, table) where `source` constructs a row of one of `TABLES` (`Message(...)`) or
    inserts into one (`insert(Message)`, `db.insert(Contact)`, `insert_rows(s, Conversation,
    …)`)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        called = _name(node.func)
        if called in TABLES:
            found.append((node.lineno, called))
        elif called in ("insert", "insert_rows"):
            for arg in node.args:
                if _name(arg) in TABLES:
                    found.append((node.lineno, str(_name(arg))))
    return sorted(found)


def test_the_scan_finds_what_it_looks_for() -> None:
    source = (
        "m = Message(body='x')\n"
        "await s.execute(tx.rt.db.insert(Contact).values([]))\n"
        "await s.execute(insert(Delivery), rows)\n"
        "ids = await db.insert_rows(s, Conversation, rows)\n"
        "await s.execute(insert(CampaignRecipient), rows)\n"
    )
    assert writes(source) == [(1, "Message"), (2, "Contact"), (3, "Delivery"), (4, "Conversation")]


@pytest.mark.parametrize("package", FEATURES)
def test_features_do_not_write_the_agents_tables(package: str) -> None:
    offenders = [
        f"{path.relative_to(SRC)}:{line} {table}"
        for path in sorted((SRC / package).rglob("*.py"))
        for line, table in writes(path.read_text())
    ]
    assert offenders == [], "write these through actions/: " + ", ".join(offenders)
