"""Evaluating a rule's conditions against the facts of one conversation.

Customer text is untrusted input to patterns: only the first MAX_TEXT characters are looked
at, patterns are compiled at save time (length-capped) and every match runs under the `regex`
module's timeout, so a pathological pattern or text makes the condition false, not a stuck
worker. Language detection uses `langdetect` (a port of Google's language-detection, seeded so
the same text always gets the same answer); below MIN_LANGUAGE_TEXT letters it does not guess.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from langdetect import DetectorFactory, LangDetectException, detect  # type: ignore[import-untyped]

from tidings.automation.rules import compile_pattern

log = logging.getLogger(__name__)

MAX_TEXT = 4096
PATTERN_TIMEOUT_SECONDS = 0.05
MIN_LANGUAGE_TEXT = 12
DetectorFactory.seed = 0


@dataclass(slots=True)
class Facts:
    """What conditions look at. `text` is the triggering message, else the customer's last one."""

    workspace_id: int
    conversation_id: int
    inbox_id: int
    channel_kind: str | None
    text: str | None
    contact_attributes: dict[str, Any]
    labels: set[str]
    inside_hours: bool
    _language: str | None = field(default=None)
    _language_done: bool = field(default=False)

    @property
    def language(self) -> str | None:
        if not self._language_done:
            self._language_done = True
            self._language = detect_language(self.text)
        return self._language


def detect_language(text: str | None) -> str | None:
    """ISO 639-1 code (langdetect's, e.g. 'en', 'es', 'zh-cn'), or None when unsure."""
    if not text:
        return None
    sample = text[:1000]
    if sum(ch.isalpha() for ch in sample) < MIN_LANGUAGE_TEXT:
        return None
    try:
        return str(detect(sample)).lower()
    except LangDetectException:
        return None


def _pattern_matches(pattern: str, text: str) -> tuple[bool, str]:
    try:
        found = compile_pattern(pattern).search(text[:MAX_TEXT], timeout=PATTERN_TIMEOUT_SECONDS)
    except TimeoutError:
        return False, "pattern timed out (treated as no match)"
    return found is not None, "matched" if found is not None else "no match"


def check(condition: dict[str, Any], facts: Facts) -> tuple[bool, str]:
    """One condition → (holds, a short explanation for the dry run and the log)."""
    kind = condition["type"]
    text = facts.text or ""
    ok: bool
    why: str
    if kind == "channel_kind":
        ok = facts.channel_kind in condition["values"]
        why = f"channel is {facts.channel_kind or 'unknown'}"
    elif kind == "inbox":
        ok = facts.inbox_id in condition["values"]
        why = f"inbox is {facts.inbox_id}"
    elif kind == "text_contains":
        folded = text[:MAX_TEXT].casefold()
        hits = [v for v in condition["values"] if v.casefold() in folded]
        ok = bool(hits)
        why = f"text contains {hits[0]!r}" if hits else "text contains none of the words"
    elif kind == "text_matches":
        ok, why = _pattern_matches(condition["pattern"], text)
    elif kind == "contact_attribute":
        actual = facts.contact_attributes.get(condition["key"])
        expected = condition["value"]
        ok = actual == expected or (
            isinstance(actual, str | int | float)
            and not isinstance(actual, bool)
            and str(actual).casefold() == str(expected).casefold()
        )
        why = f"{condition['key']} is {str(actual)[:60]!r}"
    elif kind == "label":
        ok = condition["name"] in facts.labels
        why = "label present" if ok else "label absent"
    elif kind == "business_hours":
        ok = facts.inside_hours == condition["inside"]
        why = "inside business hours" if facts.inside_hours else "outside business hours"
    elif kind == "language":
        lang = facts.language
        ok = lang is not None and any(
            lang == v or lang.split("-")[0] == v.split("-")[0] for v in condition["values"]
        )
        why = f"language looks like {lang}" if lang else "language not detected"
    else:  # pragma: no cover - validated at save time
        ok, why = False, f"unknown condition {kind}"
    if condition.get("negate"):
        ok, why = not ok, f"not ({why})"
    return ok, why


def evaluate(rule: Any, facts: Facts) -> tuple[bool, list[dict[str, Any]]]:
    """Whether `rule` (an AutomationRule or its dict) matches, with each condition's verdict."""
    conditions = rule.conditions if hasattr(rule, "conditions") else rule["conditions"]
    match = rule.match if hasattr(rule, "match") else rule.get("match", "all")
    verdicts = []
    for condition in conditions or []:
        ok, why = check(condition, facts)
        verdicts.append({"condition": condition, "matched": ok, "detail": why})
    if not verdicts:
        return True, verdicts
    flags = [v["matched"] for v in verdicts]
    return (all(flags) if match == "all" else any(flags)), verdicts
