"""Every visibility decision goes through `tidings.access`.

An agent's inboxes (`Principal.inbox_ids`) are read only there: anything else asks
`can_see_inbox`, `can_see_channel`, `require_inbox`, `require_channel`, `inbox_filter`,
`visible_*`. A second copy of the rule is how an inbox leaks (or a reply is refused) when the
rule changes, so this scans the source for reads of the attribute elsewhere.
"""

from __future__ import annotations

import ast
from pathlib import Path

import tidings

SRC = Path(tidings.__file__).parent
ATTRIBUTE = "inbox_ids"
# The module that decides; and the live event's own routing field (`LiveEvent.inbox_ids`:
# which inboxes an event is about, set by whoever emits it; `access.can_see_event` matches it
# against the receiver's inboxes). Keyword arguments (`tx.emit(..., inbox_ids=...)`) and local
# names are not attribute reads and need no exception.
ALLOWED = {SRC / "access.py", SRC / "realtime" / "bus.py"}


def _is_read(node: ast.AST) -> bool:
    if isinstance(node, ast.Attribute):
        return node.attr == ATTRIBUTE
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in ("getattr", "hasattr")
        and len(node.args) >= 2
        and isinstance(node.args[1], ast.Constant)
        and node.args[1].value == ATTRIBUTE
    )


def reads(source: str) -> list[int]:
    """Line numbers where `source` reads an attribute named `inbox_ids` (also via getattr)."""
    return sorted(node.lineno for node in ast.walk(ast.parse(source)) if _is_read(node))


def test_the_scan_finds_what_it_looks_for() -> None:
    sample = (
        "def f(who, c, tx):\n"
        "    tx.emit('x', 1, None, {}, inbox_ids=(1,))\n"
        "    inbox_ids = [1]\n"
        "    ok = who.is_admin or c.inbox_id in who.inbox_ids\n"
        "    return getattr(who, 'inbox_ids'), {'inbox_ids': inbox_ids}, ok\n"
    )
    assert reads(sample) == [4, 5]


def test_allowed_files_exist() -> None:
    assert all(path.is_file() for path in ALLOWED)


def test_inbox_membership_is_read_only_in_access() -> None:
    offenders = [
        f"{path.relative_to(SRC.parent)}:{line}"
        for path in sorted(SRC.rglob("*.py"))
        if path not in ALLOWED
        for line in reads(path.read_text(encoding="utf-8"))
    ]
    assert offenders == [], (
        "a principal's inboxes are read outside tidings/access.py; ask access "
        "(can_see_inbox, can_see_channel, require_inbox, inbox_filter, visible_*) instead: "
        + ", ".join(offenders)
    )
