"""The automation vocabulary: every condition and action kind a rule (or a macro) may use, one
small class each, registered in `CONDITIONS` and `ACTIONS` the way channel adapters are in
`channels/registry.py`. A kind validates its parameters (a 422 naming the field), says in words
what it checks or does (the thread's line, the run log, the dry run, a macro's steps) and
evaluates (conditions) or runs (actions, through the same `actions/` writer a person would use).
Nothing else switches on a kind's name: the API accepts, the engine runs and Settings offers
(`GET /api/v1/automation/kinds`, `catalog`) exactly what is registered here.

Customer text is untrusted input to patterns: only the first MAX_TEXT characters are looked
at, patterns are compiled at save time (length-capped) and every match runs under the `regex`
module's timeout, so a pathological pattern or text makes the condition false, not a stuck
worker. Language detection uses `langdetect` (a port of Google's language-detection, seeded so
the same text always gets the same answer); below MIN_LANGUAGE_TEXT letters it does not guess.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, ClassVar

import httpx
import orjson
import regex
from langdetect import DetectorFactory, LangDetectException, detect  # type: ignore[import-untyped]

from tidings import signing
from tidings.access import Principal
from tidings.actions import gate
from tidings.actions.automation import Ref
from tidings.actions.base import Tx
from tidings.actions.conversations import check_update_conversation, labels_of
from tidings.actions.gate import choose_route
from tidings.actions.notes import check_add_note
from tidings.actions.templates import check_send_template
from tidings.actions.triage import PRIORITIES, check_triage
from tidings.automation import hours as bh
from tidings.automation import replies
from tidings.automation.customer import last_from_customer
from tidings.automation.outbox import ORIGIN
from tidings.channels.registry import kinds as channel_kinds
from tidings.domain.enums import MessageKind
from tidings.domain.errors import InvalidInput, NotFound, PolicyRefusal, TidingsError
from tidings.egress import EgressRefused
from tidings.runtime import Runtime
from tidings.serialize import conversation_dict, message_dict, ts
from tidings.storage.models import (
    Agent,
    AutomationRule,
    CannedReply,
    Conversation,
    Inbox,
    Team,
    Template,
)
from tidings.storage.types import utcnow

MAX_PATTERN_LENGTH = 200
MAX_VALUE_LENGTH = 200
MAX_NOTE_LENGTH = 10_000
MAX_SNOOZE_MINUTES = 90 * 24 * 60
MAX_TEXT = 4096
PATTERN_TIMEOUT_SECONDS = 0.05
MIN_LANGUAGE_TEXT = 12
WEBHOOK_TIMEOUT_SECONDS = 10.0
LANGUAGE_CODE = regex.compile(r"^[a-z]{2,3}(-[a-z]{2,4})?$")
DetectorFactory.seed = 0


# --- parameter checks (each names the field it refuses) ------------------------------------


def compile_pattern(pattern: str) -> regex.Pattern[str]:
    """A customer-text pattern: length-capped, compiled up front, case-insensitive. Matching
    runs with a timeout (`TextMatches`), so a catastrophic pattern cannot stall a worker."""
    if not pattern or len(pattern) > MAX_PATTERN_LENGTH or "\x00" in pattern:
        raise InvalidInput(f"pattern: 1 to {MAX_PATTERN_LENGTH} characters")
    try:
        return regex.compile(pattern, regex.IGNORECASE | regex.V1)
    except regex.error as exc:
        raise InvalidInput(f"pattern: not a valid regular expression ({exc})") from None


def text(value: Any, where: str, limit: int = MAX_VALUE_LENGTH) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > limit or "\x00" in value:
        raise InvalidInput(f"{where}: text of 1 to {limit} characters")
    return value.strip()


def an_id(value: Any, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value < 2**53:
        raise InvalidInput(f"{where}: an id")
    return value


def a_list(value: Any, where: str, limit: int = 50) -> list[Any]:
    if not isinstance(value, list) or not value or len(value) > limit:
        raise InvalidInput(f"{where}: a list of 1 to {limit} values")
    return value


def minutes(value: Any, where: str, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not lo <= value <= hi:
        raise InvalidInput(f"{where}: a number of minutes from {lo:g} to {hi:g}")
    return float(value)


class Kind:
    """A registered kind. `ref`: the parameter holding ids of the workspace's rows (an id or a
    list), the table, and what a 422 says when one is not the workspace's."""

    type: ClassVar[str]
    label: ClassVar[str]  # what Settings offers
    ref: ClassVar[tuple[str, Any, str] | None] = None

    def validate(self, raw: dict[str, Any], where: str) -> dict[str, Any]:
        """The parameters as stored (without `type`); raises InvalidInput naming the field.
        By default: the one id `ref` names, if any."""
        if self.ref is None:
            return {}
        key = self.ref[0]
        return {key: an_id(raw.get(key), f"{where}.{key}")}


# --- conditions --------------------------------------------------------------------------------


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


class ConditionKind(Kind):
    def check(self, c: dict[str, Any], facts: Facts) -> tuple[bool, str]:
        """(holds, a short explanation for the dry run and the log)."""
        raise NotImplementedError


class TextContains(ConditionKind):
    type, label = "text_contains", "Text contains (comma-separated words)"

    def validate(self, raw: dict[str, Any], where: str) -> dict[str, Any]:
        return {"values": [text(v, f"{where}.values") for v in a_list(raw.get("values"), where)]}

    def check(self, c: dict[str, Any], facts: Facts) -> tuple[bool, str]:
        folded = (facts.text or "")[:MAX_TEXT].casefold()
        hits = [v for v in c["values"] if v.casefold() in folded]
        return bool(
            hits
        ), f"text contains {hits[0]!r}" if hits else "text contains none of the words"


class TextMatches(ConditionKind):
    type, label = "text_matches", "Text matches (regular expression)"

    def validate(self, raw: dict[str, Any], where: str) -> dict[str, Any]:
        pattern = raw.get("pattern")
        compile_pattern(pattern if isinstance(pattern, str) else "")
        return {"pattern": pattern}

    def check(self, c: dict[str, Any], facts: Facts) -> tuple[bool, str]:
        try:
            found = compile_pattern(c["pattern"]).search(
                (facts.text or "")[:MAX_TEXT], timeout=PATTERN_TIMEOUT_SECONDS
            )
        except TimeoutError:
            return False, "pattern timed out (treated as no match)"
        return found is not None, "matched" if found is not None else "no match"


class ChannelKind(ConditionKind):
    type, label = "channel_kind", "Channel is"

    def validate(self, raw: dict[str, Any], where: str) -> dict[str, Any]:
        values = [text(v, f"{where}.values", 32) for v in a_list(raw.get("values"), where)]
        unknown = [v for v in values if v not in channel_kinds()]
        if unknown:
            raise InvalidInput(f"{where}.values: unknown channel kind {str(unknown[0])[:40]!r}")
        return {"values": sorted(set(values))}

    def check(self, c: dict[str, Any], facts: Facts) -> tuple[bool, str]:
        return facts.channel_kind in c["values"], f"channel is {facts.channel_kind or 'unknown'}"


class InboxIs(ConditionKind):
    type, label = "inbox", "Inbox is"
    ref = ("values", Inbox, "no such inbox in this workspace")

    def validate(self, raw: dict[str, Any], where: str) -> dict[str, Any]:
        values = a_list(raw.get("values"), where)
        return {"values": sorted({an_id(v, f"{where}.values") for v in values})}

    def check(self, c: dict[str, Any], facts: Facts) -> tuple[bool, str]:
        return facts.inbox_id in c["values"], f"inbox is {facts.inbox_id}"


class ContactAttribute(ConditionKind):
    type, label = "contact_attribute", "Contact attribute equals"

    def validate(self, raw: dict[str, Any], where: str) -> dict[str, Any]:
        key = text(raw.get("key"), f"{where}.key", 100)
        value = raw.get("value")
        if (
            not isinstance(value, str | int | float | bool)
            or (isinstance(value, str) and (len(value) > MAX_VALUE_LENGTH or "\x00" in value))
            or (isinstance(value, float) and not math.isfinite(value))
            or (isinstance(value, int) and abs(value) >= 2**53)
        ):
            raise InvalidInput(f"{where}.value: text, a number or true/false")
        return {"key": key, "value": value}

    def check(self, c: dict[str, Any], facts: Facts) -> tuple[bool, str]:
        actual = facts.contact_attributes.get(c["key"])
        expected = c["value"]
        ok = actual == expected or (
            isinstance(actual, str | int | float)
            and not isinstance(actual, bool)
            and str(actual).casefold() == str(expected).casefold()
        )
        return ok, f"{c['key']} is {str(actual)[:60]!r}"


class HasLabel(ConditionKind):
    type, label = "label", "Has label"

    def validate(self, raw: dict[str, Any], where: str) -> dict[str, Any]:
        return {"name": text(raw.get("name"), f"{where}.name", 100)}

    def check(self, c: dict[str, Any], facts: Facts) -> tuple[bool, str]:
        ok = c["name"] in facts.labels
        return ok, "label present" if ok else "label absent"


class BusinessHours(ConditionKind):
    type, label = "business_hours", "Business hours"

    def validate(self, raw: dict[str, Any], where: str) -> dict[str, Any]:
        if not isinstance(raw.get("inside"), bool):
            raise InvalidInput(f"{where}.inside: true (inside hours) or false (outside)")
        return {"inside": raw["inside"]}

    def check(self, c: dict[str, Any], facts: Facts) -> tuple[bool, str]:
        inside = facts.inside_hours
        return inside == c["inside"], f"{'inside' if inside else 'outside'} business hours"


class Language(ConditionKind):
    type, label = "language", "Language is (e.g. en, es)"

    def validate(self, raw: dict[str, Any], where: str) -> dict[str, Any]:
        values = [text(v, f"{where}.values", 10).lower() for v in a_list(raw.get("values"), where)]
        if any(not LANGUAGE_CODE.match(v) for v in values):
            raise InvalidInput(f"{where}.values: ISO 639-1 codes such as en, es, pt")
        return {"values": values}

    def check(self, c: dict[str, Any], facts: Facts) -> tuple[bool, str]:
        lang = facts.language
        ok = lang is not None and any(
            lang == v or lang.split("-")[0] == v.split("-")[0] for v in c["values"]
        )
        return ok, f"language looks like {lang}" if lang else "language not detected"


CONDITIONS: dict[str, ConditionKind] = {
    k.type: k
    for k in (
        TextContains(),
        TextMatches(),
        ChannelKind(),
        InboxIs(),
        ContactAttribute(),
        HasLabel(),
        BusinessHours(),
        Language(),
    )
}


def check(condition: dict[str, Any], facts: Facts) -> tuple[bool, str]:
    """One stored condition → (holds, why), `negate` applied."""
    kind = CONDITIONS.get(condition["type"])
    if kind is None:  # pragma: no cover - validated at save time
        return False, f"unknown condition {condition['type']}"
    ok, why = kind.check(condition, facts)
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


# --- actions -----------------------------------------------------------------------------------


@dataclass(slots=True)
class Step:
    """One action about to run: as whom, on which conversation, for which rule (None: a macro)."""

    rt: Runtime
    who: Principal
    conversation_id: int
    rule: AutomationRule | None
    event: str


class ActionKind(Kind):
    macro: ClassVar[bool] = True  # may a macro use it (a webhook carries a rule's secret)
    sealed: ClassVar[bool] = False  # has a write-only `secret`, shown as `has_secret`
    name_field: ClassVar[str] = "name"  # the `ref` row's column that names it in words

    # What the action did, as the thread and the log say it: "added label {name}", with the
    # action's parameters and {named}, the `ref` row's name (else its id).
    says: ClassVar[str]

    def describe(self, a: dict[str, Any], name: str | None = None) -> str:
        """`name`: the referenced row's name when known."""
        named = name or (str(a[self.ref[0]]) if self.ref is not None else "")
        return self.says.format(**a, named=named)

    async def vet(self, rt: Runtime, a: dict[str, Any], where: str) -> None:
        """Checks that need the runtime, before a rule is saved."""

    async def preview(self, tx: Tx, conv: Conversation, a: dict[str, Any]) -> str | None:
        """Dry run: why the policy layer would refuse the action now, or None."""
        return None

    async def run(self, step: Step, a: dict[str, Any]) -> str | None:
        """Do it through the `actions/` writer; a note for the log, or None."""
        raise NotImplementedError


class AddLabel(ActionKind):
    type, label = "add_label", "Add label"
    says = "added label {name}"

    def validate(self, raw: dict[str, Any], where: str) -> dict[str, Any]:
        return {"name": text(raw.get("name"), f"{where}.name", 100)}

    async def run(self, step: Step, a: dict[str, Any]) -> str | None:
        async with step.rt.db.read() as s:
            current = await labels_of(s, step.conversation_id)
        if a["name"] in current:
            return "label already present"
        await check_update_conversation(
            step.rt, step.who, step.conversation_id, labels=[*current, a["name"]]
        )
        return None


class AssignAgent(ActionKind):
    type, label = "assign_agent", "Assign agent"
    ref = ("agent_id", Agent, "not found in this workspace")

    def describe(self, a: dict[str, Any], name: str | None = None) -> str:
        return f"assigned {name or 'agent ' + str(a['agent_id'])}"

    async def run(self, step: Step, a: dict[str, Any]) -> None:
        # The rule's own line (written in the change's transaction) says it and tells the new
        # assignee (actions/notifications.py); a refusal's line replaces it (execute_rule).
        origin = ORIGIN.get()
        if origin is not None:
            origin.narrate_extra = {"event": "assigned", "assignee_id": a["agent_id"]}
        await check_update_conversation(
            step.rt,
            step.who,
            step.conversation_id,
            assignee_id=a["agent_id"],
            assignment_line=False,
        )


class AssignTeam(ActionKind):
    type, label = "assign_team", "Assign team"
    says = "assigned team {named}"
    ref = ("team_id", Team, "not found in this workspace")

    async def run(self, step: Step, a: dict[str, Any]) -> None:
        await check_update_conversation(
            step.rt, step.who, step.conversation_id, team_id=a["team_id"]
        )


class SetPriority(ActionKind):
    type, label = "set_priority", "Set priority"
    says = "set priority {priority}"

    def validate(self, raw: dict[str, Any], where: str) -> dict[str, Any]:
        if raw.get("priority") not in PRIORITIES:
            raise InvalidInput(f"{where}.priority: one of {', '.join(PRIORITIES)}")
        return {"priority": raw["priority"]}

    async def run(self, step: Step, a: dict[str, Any]) -> None:
        await check_triage(step.rt, step.who, step.conversation_id, priority=a["priority"])


class Snooze(ActionKind):
    type, label = "snooze", "Snooze"

    def validate(self, raw: dict[str, Any], where: str) -> dict[str, Any]:
        if raw.get("until") == "next_opening":
            return {"until": "next_opening"}
        return {"minutes": minutes(raw.get("minutes"), f"{where}.minutes", 1, MAX_SNOOZE_MINUTES)}

    def describe(self, a: dict[str, Any], name: str | None = None) -> str:
        if a.get("until") == "next_opening":
            return "snoozed until business hours"
        return f"snoozed for {a['minutes']:g} minutes"

    async def run(self, step: Step, a: dict[str, Any]) -> None:
        until: datetime | None
        if a.get("until") == "next_opening":
            async with step.rt.db.read() as s:
                conv = await s.get_one(Conversation, step.conversation_id)
                until = bh.next_opening(await bh.hours_for_inbox(s, conv.inbox_id), utcnow())
            if until is None:
                raise PolicyRefusal(
                    "This inbox has no business hours to snooze until.", code="no_hours"
                )
        else:
            until = utcnow() + timedelta(minutes=float(a["minutes"]))
        await check_triage(step.rt, step.who, step.conversation_id, snoozed_until=until)


async def _refusal(
    tx: Tx, conv: Conversation, channel_id: int | None, kind: MessageKind, body: str
) -> str | None:
    """Why the gate would refuse an automated message now, or None."""
    try:
        route = await choose_route(tx, conv, channel_id)
        await gate.check_send(tx.session, conv, route, kind, body, person=False)
    except TidingsError as exc:
        return exc.message
    return None


class SendCannedReply(ActionKind):
    type, label = "send_canned_reply", "Send canned reply"
    says = "sent canned reply /{named}"
    ref = ("canned_reply_id", CannedReply, "not found in this workspace")
    name_field = "short_code"

    async def preview(self, tx: Tx, conv: Conversation, a: dict[str, Any]) -> str | None:
        canned = await tx.session.get(CannedReply, a["canned_reply_id"])
        return await _refusal(tx, conv, None, MessageKind.TEXT, canned.content if canned else "")

    async def run(self, step: Step, a: dict[str, Any]) -> None:
        async with step.rt.db.read() as s:
            canned = await s.get(CannedReply, a["canned_reply_id"])
        if canned is None or canned.workspace_id != step.who.workspace_id:
            raise NotFound("the canned reply no longer exists")
        await replies.send_text(step.rt, step.conversation_id, canned.content)


class SendTemplate(ActionKind):
    type, label = "send_template", "Send template"
    says = "sent template {named}"
    ref = ("template_id", Template, "not found in this workspace")

    def validate(self, raw: dict[str, Any], where: str) -> dict[str, Any]:
        template_id = an_id(raw.get("template_id"), f"{where}.template_id")
        params = raw.get("params") or []
        if not isinstance(params, list) or len(params) > 20:
            raise InvalidInput(f"{where}.params: a list of up to 20 texts")
        return {
            "template_id": template_id,
            "params": [text(p, f"{where}.params", 1000) for p in params],
        }

    async def preview(self, tx: Tx, conv: Conversation, a: dict[str, Any]) -> str | None:
        template = await tx.session.get(Template, a["template_id"])
        channel_id = template.channel_id if template else None
        return await _refusal(tx, conv, channel_id, MessageKind.TEMPLATE, "template")

    async def run(self, step: Step, a: dict[str, Any]) -> None:
        await check_send_template(
            step.rt, step.who, step.conversation_id, a["template_id"], list(a.get("params") or [])
        )


class AddNote(ActionKind):
    type, label = "add_note", "Add private note"
    says = "added a private note"

    def validate(self, raw: dict[str, Any], where: str) -> dict[str, Any]:
        return {"text": text(raw.get("text"), f"{where}.text", MAX_NOTE_LENGTH)}

    async def run(self, step: Step, a: dict[str, Any]) -> None:
        await check_add_note(step.rt, step.who, step.conversation_id, a["text"])


class CallWebhook(ActionKind):
    """POSTs the rule, the conversation and the customer's last message to a URL an admin typed,
    through the egress policy (tidings/egress.py) like an outgoing-webhook subscription, so a
    rule cannot reach internal services; signed when the rule has a secret."""

    type, label = "webhook", "Call webhook"
    says = "called webhook {url:.80}"
    macro, sealed = False, True

    def validate(self, raw: dict[str, Any], where: str) -> dict[str, Any]:
        url = text(raw.get("url"), f"{where}.url", 2000)
        if not url.startswith(("https://", "http://")):
            raise InvalidInput(f"{where}.url: an http(s) URL")
        out = {"url": url}
        if raw.get("secret") is not None:
            out["secret"] = text(raw.get("secret"), f"{where}.secret", 500)
        return out

    async def vet(self, rt: Runtime, a: dict[str, Any], where: str) -> None:
        try:
            await rt.egress.policy.check_destination(a["url"])
        except EgressRefused as exc:
            raise InvalidInput(f"{where}.url: {exc}") from None

    async def run(self, step: Step, a: dict[str, Any]) -> str | None:
        rt, rule, conv_id = step.rt, step.rule, step.conversation_id
        if rule is None:  # a macro; validation already refuses this
            raise InvalidInput("a macro cannot call a webhook; use a rule for that")
        async with rt.db.read() as s:
            conv = await s.get_one(Conversation, conv_id)
            last = await last_from_customer(s, conv_id)
            labels = await labels_of(s, conv_id)
        body = orjson.dumps(
            {
                "event": "automation.rule",
                "workspace_id": conv.workspace_id,
                "data": {
                    "rule": {"id": rule.id, "name": rule.name, "event": step.event},
                    "conversation": conversation_dict(conv, labels),
                    "message": message_dict(last) if last is not None else None,
                },
                "created_at": ts(utcnow()),
            }
        )
        sealed = a.get("secret_encrypted")
        secret = rt.box.decrypt_str(sealed) if sealed else None
        headers = signing.webhook_headers("automation.rule", body, secret)
        try:
            resp, _answer = await rt.egress.post(
                a["url"], content=body, headers=headers, timeout=WEBHOOK_TIMEOUT_SECONDS
            )
        except EgressRefused as exc:
            raise TidingsError(f"webhook refused by the egress policy: {exc.reason}") from None
        except httpx.HTTPError as exc:
            raise TidingsError(f"webhook call failed: {type(exc).__name__}") from None
        if not 200 <= resp.status_code < 300:
            raise TidingsError(f"webhook answered HTTP {resp.status_code}")
        return f"webhook answered HTTP {resp.status_code}"


class Resolve(ActionKind):
    type, label = "resolve", "Resolve"
    says = "resolved the conversation"

    async def run(self, step: Step, a: dict[str, Any]) -> None:
        await check_update_conversation(step.rt, step.who, step.conversation_id, status="resolved")


ACTIONS: dict[str, ActionKind] = {
    k.type: k
    for k in (
        AddLabel(),
        AssignAgent(),
        AssignTeam(),
        SetPriority(),
        Snooze(),
        SendCannedReply(),
        SendTemplate(),
        AddNote(),
        CallWebhook(),
        Resolve(),
    )
}


# --- the registry's entry points ---------------------------------------------------------------


def validate(section: str, raw: Any, i: int) -> dict[str, Any]:
    """Item `i` of a rule's `conditions` or `actions` (`section`) as stored."""
    registry: dict[str, Any] = CONDITIONS if section == "conditions" else ACTIONS
    where = f"{section}[{i}]"
    kind = raw.get("type") if isinstance(raw, dict) else None
    if not isinstance(kind, str) or kind not in registry:
        raise InvalidInput(f"{where}.type: one of {', '.join(registry)}")
    out: dict[str, Any] = {"type": kind}
    if section == "conditions" and raw.get("negate"):
        out["negate"] = True
    out.update(registry[kind].validate(raw, where))
    return out


async def vet_actions(rt: Runtime, actions: list[dict[str, Any]]) -> None:
    for i, a in enumerate(actions):
        await ACTIONS[a["type"]].vet(rt, a, f"actions[{i}]")


def references(rule: dict[str, Any]) -> list[Ref]:
    """The workspace rows a validated rule names, for `actions.automation` to check."""
    refs = []
    for section, registry in (("conditions", CONDITIONS), ("actions", ACTIONS)):
        for i, item in enumerate(rule.get(section) or []):
            ref = registry[item["type"]].ref
            if ref is not None:
                key, model, missing = ref
                ids = item[key] if isinstance(item[key], list) else [item[key]]
                refs.append(Ref(f"{section}[{i}].{key}", model, ids, missing))
    return refs


async def describe(s: Any, a: dict[str, Any]) -> str:
    """An action in words, naming the row it refers to when that still exists."""
    kind = ACTIONS[a["type"]]
    name = None
    if kind.ref is not None:
        row = await s.get(kind.ref[1], a[kind.ref[0]])
        name = getattr(row, kind.name_field) if row is not None else None
    return kind.describe(a, name)


def show_action(a: dict[str, Any]) -> dict[str, Any]:
    """A stored action as the API shows it: a sealed secret only as `has_secret`."""
    shown = {k: v for k, v in a.items() if k != "secret_encrypted"}
    if ACTIONS[a["type"]].sealed:
        shown["has_secret"] = "secret_encrypted" in a
    return shown


def catalog() -> dict[str, list[dict[str, Any]]]:
    """What Settings offers (`GET /api/v1/automation/kinds`), in the registry's order."""
    return {
        "conditions": [{"type": k.type, "label": k.label} for k in CONDITIONS.values()],
        "actions": [{"type": k.type, "label": k.label, "macro": k.macro} for k in ACTIONS.values()],
    }
