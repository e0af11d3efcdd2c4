"""The rule-run log: one `rule_run` row per (rule, event) — or per auto-reply and period —
with the outcome of each action, and the system events that narrate runs in the thread."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tidings.actions.system_line import do_system_line
from tidings.domain.errors import PolicyRefusal, TidingsError
from tidings.serialize import ts
from tidings.storage.models import Conversation, Message, RuleRun
from tidings.storage.types import utcnow

if TYPE_CHECKING:
    from tidings.actions.base import Tx
    from tidings.automation.outbox import Origin


class RunState:
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    SKIPPED = "skipped"


async def start_run(
    tx: Tx,
    *,
    workspace_id: int,
    conversation_id: int,
    dedupe_key: str,
    rule_id: int | None,
    rule_name: str,
    kind: str,
    event: str,
    event_id: int | None,
    state: str = RunState.RUNNING,
    error: str | None = None,
) -> tuple[RuleRun, bool]:
    """The run for `dedupe_key`, created if new. Returns (run, created). An existing run is
    the same (rule, event) seen again (at-least-once delivery): its recorded actions are not
    repeated."""
    now = utcnow()
    new_id = await tx.session.scalar(
        tx.rt.db.insert(RuleRun)
        .values(
            workspace_id=workspace_id,
            rule_id=rule_id,
            rule_name=rule_name,
            kind=kind,
            conversation_id=conversation_id,
            event_id=event_id,
            event=event,
            dedupe_key=dedupe_key,
            state=state,
            results=[],
            error=error,
            created_at=now,
            finished_at=None if state == RunState.RUNNING else now,
        )
        .on_conflict_do_nothing(index_elements=["dedupe_key"])
        .returning(RuleRun.id)
    )
    run = await tx.session.scalar(
        select(RuleRun)
        .where(RuleRun.dedupe_key == dedupe_key)
        .execution_options(populate_existing=True)
    )
    assert run is not None
    return run, new_id is not None


# A run left `running` this long ago by a worker that died is resumed; a younger one belongs to
# a worker that is still on it (the event's lease is as long).
STALE_RUN_SECONDS = 120


def should_execute(run: RuleRun, created: bool) -> bool:
    """Whether this worker runs (or resumes) `run`: a new run, or one a dead worker left."""
    if run.state != RunState.RUNNING:
        return False
    if created:
        return True
    return (utcnow() - run.created_at).total_seconds() >= STALE_RUN_SECONDS


def failed_result(index: int, action: str, exc: TidingsError) -> dict[str, Any]:
    """An action the policy layer refused, or that failed, as its run records it."""
    outcome = "refused" if isinstance(exc, PolicyRefusal) else "failed"
    return {
        "index": index,
        "action": action,
        "outcome": outcome,
        "code": exc.code,
        "detail": exc.message,
    }


async def record_action_result(s: AsyncSession, run_id: int, result: dict[str, Any]) -> None:
    run = await s.get_one(RuleRun, run_id)
    run.results = [*(run.results or []), result]


async def finish_run(s: AsyncSession, run_id: int, error: str | None = None) -> None:
    run = await s.get_one(RuleRun, run_id)
    failed = error is not None or any(r.get("outcome") == "failed" for r in run.results or [])
    run.state = RunState.FAILED if failed else RunState.DONE
    run.error = error
    run.finished_at = utcnow()


async def system_event(
    tx: Tx, origin: Origin, text: str, extra: dict[str, Any] | None = None
) -> Message:
    """A line in the thread such as "Rule 'VIP' added label vip" (never sent anywhere)."""
    conv = await tx.session.get_one(Conversation, origin.conversation_id)
    return await do_system_line(tx, conv, text, {**(extra or {}), "automation": origin.stamp()})


def run_dict(run: RuleRun) -> dict[str, Any]:
    return {
        "id": run.id,
        "rule_id": run.rule_id,
        "rule_name": run.rule_name,
        "kind": run.kind,
        "conversation_id": run.conversation_id,
        "event": run.event,
        "event_id": run.event_id,
        "state": run.state,
        "results": run.results or [],
        "error": run.error,
        "created_at": ts(run.created_at),
        "finished_at": ts(run.finished_at) if run.finished_at else None,
    }
