"""A nesting limit for untrusted JSON, checked before it is parsed.

No provider nests its webhook JSON more than ~10 levels. Deeper bodies are refused up front:
orjson parses up to 1024 levels but dumps only 254, and recursive walkers meet Python's
recursion limit, which made such a body a 500.
"""

from __future__ import annotations

import re

MAX_JSON_DEPTH = 64
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')
_BRACKET = re.compile(rb"[\[\]{}]")


class TooDeep(ValueError):
    def __init__(self, limit: int = MAX_JSON_DEPTH) -> None:
        super().__init__(f"JSON nested deeper than {limit} levels")


def too_deep(body: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether JSON `body` nests deeper than `limit`. Counting brackets is a C-speed upper bound
    that clears almost every real webhook; only bodies with more brackets than `limit` are
    scanned (outside string literals)."""
    if body.count(b"[") + body.count(b"{") <= limit:
        return False
    depth = 0
    for m in _BRACKET.finditer(_STRING.sub(b"", body)):
        if m.group() in (b"[", b"{"):
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False


def check_depth(body: bytes, limit: int = MAX_JSON_DEPTH) -> None:
    """Raise TooDeep if `body` nests deeper than `limit`."""
    if too_deep(body, limit):
        raise TooDeep(limit)
