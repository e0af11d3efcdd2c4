"""Build src/tidings/web/static/icons.svg: the icons the UI uses, as one SVG sprite of <symbol>s
taken from the pinned `lucide-static` package (package.json; ISC licence, kept in the sprite).

    .venv/bin/python scripts/icons.py          # rebuild (after adding an icon name below)
    .venv/bin/python scripts/icons.py --check  # exit 1 when the sprite is stale

The sprite is committed so that a Python-only install serves it from /static with no Node.js;
tests/test_icons.py checks that every icon a page or an adapter names is in it.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "node_modules" / "lucide-static"
OUT = ROOT / "src" / "tidings" / "web" / "static" / "icons.svg"

# Icons the pages name (ui.js `icon("...")`); adapters add theirs (`Capabilities.icon`).
UI_ICONS = [
    "alert-triangle", "arrow-left", "arrow-right", "at-sign", "bell", "check", "check-check", "chevron-down",
    "circle-check", "clock", "command", "file-text", "inbox", "info", "keyboard", "list-filter",
    "lock", "log-out", "megaphone", "menu", "message-circle", "moon", "paperclip", "play",
    "plus", "search", "send", "settings", "sun", "trash-2", "user", "user-round", "users",
    "wifi-off", "x", "zap", "chart-column", "star", "bookmark", "smartphone",
]  # fmt: skip


def adapter_icons() -> list[str]:
    sys.path.insert(0, str(ROOT / "src"))
    from tidings.channels.registry import kind_capabilities

    return [str(k["icon"]) for k in kind_capabilities()]


def build() -> str:
    version = json.loads((SRC / "package.json").read_text())["version"]
    names = sorted(set(UI_ICONS) | set(adapter_icons()))
    symbols = []
    for name in names:
        svg = (SRC / "icons" / f"{name}.svg").read_text()
        body = re.search(r"<svg[^>]*>(.*)</svg>", svg, re.S)
        if body is None:
            raise SystemExit(f"icons: cannot read {name}.svg")
        inner = " ".join(line.strip() for line in body.group(1).strip().splitlines())
        symbols.append(f'<symbol id="{name}" viewBox="0 0 24 24">{inner}</symbol>')
    return (
        f"<!-- Built by scripts/icons.py from lucide-static v{version} (ISC licence, "
        "Lucide Icons and Contributors) -->\n"
        '<svg xmlns="http://www.w3.org/2000/svg" fill="none" stroke="currentColor" '
        'stroke-width="2" stroke-linecap="round" stroke-linejoin="round">\n'
        + "\n".join(symbols)
        + "\n</svg>\n"
    )


def main() -> int:
    if not SRC.is_dir():
        print("icons: node_modules/lucide-static missing (scripts/setup)", file=sys.stderr)
        return 1
    text = build()
    if "--check" in sys.argv:
        if OUT.read_text() != text:
            print("icons: src/tidings/web/static/icons.svg is stale; run scripts/icons.py")
            return 1
        return 0
    OUT.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
