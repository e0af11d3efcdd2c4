"""Reports API: `GET /api/v1/reports/{conversations,channels,agents,service,campaigns}` (JSON,
or CSV with `format=csv`; `service` is CSAT and SLA) and
`GET /api/v1/reports/export/conversations.csv` (one row per conversation, streamed). Owners and
admins only."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from tidings import csvio
from tidings.api.campaigns import ReportOut
from tidings.api.deps import RT, Admin
from tidings.domain.errors import InvalidInput
from tidings.reports import queries as q
from tidings.runtime import Runtime
from tidings.storage.models import Agent, Channel, Inbox, Label, Team
from tidings.storage.types import utcnow

router = APIRouter(prefix="/api/v1/reports", tags=["reports"])


# Ids are bigints: anything larger is refused here, before a query (or a streamed export) starts.
MAX_ID = 2**63 - 1
Format = Annotated[Literal["json", "csv"], Query(description="json (default) or csv")]


def filters(
    who: Admin,
    from_: Annotated[date | None, Query(alias="from", description="first UTC day")] = None,
    to: Annotated[date | None, Query(description="last UTC day (inclusive)")] = None,
    inbox_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    channel_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    team_id: Annotated[int | None, Query(ge=0, le=MAX_ID, description="0: no team")] = None,
    agent_id: Annotated[
        int | None, Query(ge=0, le=MAX_ID, description="assignee; 0: unassigned")
    ] = None,
    label_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    business_hours: Annotated[
        bool, Query(description="times count only the inbox's business hours")
    ] = False,
) -> q.Filters:
    end = to or utcnow().date()
    start = from_ or end - timedelta(days=29)
    if start > end:
        raise InvalidInput("from: must not be after to")
    if (end - start).days + 1 > q.MAX_DAYS:
        raise InvalidInput(f"from/to: at most {q.MAX_DAYS} days")
    return q.Filters(
        workspace_id=who.workspace_id,
        start=start,
        end=end,
        inbox_id=inbox_id,
        channel_id=channel_id,
        team_id=team_id,
        agent_id=agent_id,
        label_id=label_id,
        business_hours=business_hours,
    )


F = Annotated[q.Filters, Depends(filters)]


def display_name(kind: str, id_: int | None, name: str | None) -> str:
    """A row's name for people: "unassigned" / "no team" for the empty group, and a deleted
    agent or team said as such rather than a bare id."""
    if name:
        return name
    if id_ is None:
        return {"agent": "unassigned", "team": "no team", "channel": "no channel"}[kind]
    return f"deleted {kind} #{id_}"


TIMING = ("median_seconds", "p90_seconds", "conversations")


def _timing_columns(*kinds: str) -> list[str]:
    """The CSV columns of timings, e.g. `first_response_median_seconds`, in TIMING order."""
    return [f"{kind}_{figure}" for kind in kinds for figure in TIMING]


def _timing_cells(row: dict[str, Any], *kinds: str) -> list[Any]:
    """`row`'s timings of `kinds` (each a TimingOut dict) for `_timing_columns(*kinds)`."""
    return [row[kind][figure] for kind in kinds for figure in TIMING]


class OptionOut(BaseModel):
    id: int
    name: str


class ReportOptionsOut(BaseModel):
    inboxes: list[OptionOut]
    channels: list[OptionOut]
    teams: list[OptionOut]
    agents: list[OptionOut]
    labels: list[OptionOut]


@router.get("/options", response_model=ReportOptionsOut)
async def report_options(who: Admin, rt: RT) -> dict[str, list[dict[str, Any]]]:
    """What the filters can choose from: inboxes, channels, teams, agents and labels."""
    out: dict[str, list[dict[str, Any]]] = {}
    async with rt.db.read() as s:
        for key, model in (
            ("inboxes", Inbox),
            ("channels", Channel),
            ("teams", Team),
            ("agents", Agent),
            ("labels", Label),
        ):
            rows = await s.execute(
                select(model.id, model.name)
                .where(model.workspace_id == who.workspace_id)
                .order_by(model.name, model.id)
            )
            out[key] = [{"id": i, "name": n} for i, n in rows]
    return out


class TimingOut(BaseModel):
    median_seconds: int | None
    p90_seconds: int | None
    conversations: int


class RangeOut(BaseModel):
    from_: str = Field(alias="from", description="First UTC day")
    to: str = Field(description="Last UTC day")


class TotalsOut(BaseModel):
    new: int
    resolved: int
    backlog: int


class WaitingOut(BaseModel):
    conversations: int
    oldest_since: str | None


class DayOut(TotalsOut):
    day: str


class ConversationsReportOut(RangeOut):
    business_hours: bool
    totals: TotalsOut
    first_response: TimingOut
    reply: TimingOut
    resolution: TimingOut
    waiting_now: WaitingOut = Field(description="Conversations waiting for an agent now")
    series: list[DayOut]


class _LoadRow(BaseModel):
    name: str | None
    conversations: int
    resolved: int
    first_response: TimingOut
    resolution: TimingOut
    open_now: int


class AgentRowOut(_LoadRow):
    agent_id: int | None = Field(description="null: unassigned")


class TeamRowOut(_LoadRow):
    team_id: int | None = Field(description="null: no team")


class AgentsReportOut(RangeOut):
    business_hours: bool
    teams: list[TeamRowOut]
    agents: list[AgentRowOut]


@router.get("/conversations", response_model=ConversationsReportOut)
async def conversations_report(f: F, rt: RT, format: Format = "json") -> Any:
    """New, resolved and backlog per day; first response, reply and resolution times (median,
    p90); conversations waiting for an agent now."""
    async with rt.db.read() as s:
        r = await q.conversations(s, rt.db, f)
        if format == "json":
            return r
        # One line per day with that day's timings: first response and reply of the
        # conversations created that day, resolution of those resolved that day.
        per_day = await q.daily_timings(s, rt.db, f)
    kinds = ("first_response", "reply", "resolution")
    return csvio.download(
        "conversations",
        ["day", "new", "resolved", "backlog", *_timing_columns(*kinds)],
        [
            [
                d["day"],
                d["new"],
                d["resolved"],
                d["backlog"],
                *_timing_cells(per_day[d["day"]], *kinds),
            ]
            for d in r["series"]
        ],
    )


class FallbackCountsOut(BaseModel):
    failed: int
    not_delivered_in_time: int
    refused: int


class ChannelRowOut(BaseModel):
    channel_id: int | None
    name: str | None
    kind: str | None
    messages_in: int
    messages_out: int
    conversations_new: int
    delivered: int
    read: int
    failed: int
    delivery_rate: float | None
    read_rate: float | None
    fallbacks: FallbackCountsOut
    customer_replies: int
    customer_reply_avg_seconds: int | None
    cost: str = Field(description="Estimated cost (a decimal string)")


class ChannelTotalsOut(BaseModel):
    messages: int
    cost: str
    fallbacks: int


class OptOutCountOut(BaseModel):
    channel_kind: str
    contacts: int


class FastestOut(BaseModel):
    channel_id: int
    name: str | None
    customers: int


class CustomersOut(BaseModel):
    multi_channel: int = Field(description="Customers who used more than one channel")
    fastest_channel: list[FastestOut] = Field(description="Where they answered fastest")


class ChannelDayOut(BaseModel):
    # Genuinely open: one key per channel id with that day's messages, besides `day`.
    model_config = ConfigDict(extra="allow")
    day: str


class ChannelsReportOut(RangeOut):
    currency: str = Field(description="The costs' currency (the SMS price table's)")
    channels: list[ChannelRowOut]
    totals: ChannelTotalsOut
    opt_outs: list[OptOutCountOut]
    customers: CustomersOut
    series: list[ChannelDayOut] = Field(description='[{"day", "<channel_id>": messages}]')


# The CSV's columns: a JSON channel row's, its fallbacks flattened (`fallbacks_refused`...),
# on each day's line, with the report's currency.
CHANNEL_COLUMNS = [
    "day",
    *(
        f"fallbacks_{kind}" if name == "fallbacks" else name
        for name in ChannelRowOut.model_fields
        for kind in (FallbackCountsOut.model_fields if name == "fallbacks" else [name])
    ),
    "currency",
]


@router.get("/channels", response_model=ChannelsReportOut)
async def channels_report(f: F, rt: RT, format: Format = "json") -> Any:
    """Per channel: messages, conversations, delivery and read rates, fallbacks and why, cost,
    customer reply time; opt-outs per channel kind; customers on more than one channel."""
    async with rt.db.read() as s:
        r = await q.channels(s, rt.db, f, per_day=format == "csv")
    if format == "json":
        return r

    def line(c: dict[str, Any]) -> list[Any]:
        # The columns are the day's keys, with the fallbacks flattened.
        fallbacks = {f"fallbacks_{k}": n for k, n in c["fallbacks"].items()}
        name = display_name("channel", c["channel_id"], c["name"])
        flat = {**c, **fallbacks, "name": name, "currency": r["currency"]}
        return [flat[column] for column in CHANNEL_COLUMNS]

    # One line per day and channel (days without traffic on a channel have no line).
    return csvio.download(
        "channels",
        CHANNEL_COLUMNS,
        [line(c) for c in r["days"]],
    )


@router.get("/agents", response_model=AgentsReportOut)
async def agents_report(f: F, rt: RT, format: Format = "json") -> Any:
    """Per agent and per team: conversations, resolved, first response and resolution times,
    open load now."""
    async with rt.db.read() as s:
        r = await q.agents(s, rt.db, f)
        if format == "json":
            return r
        # One line per day and agent (and team): that day's conversations and first responses,
        # and the conversations resolved that day (days with neither have no line).
        days = await q.agents_daily(s, rt.db, f, ["agent", "team"] if r["teams"] else ["agent"])
    names = {
        (kind, row[f"{kind}_id"]): row["name"]
        for kind in ("agent", "team")
        for row in r[f"{kind}s"]
    }
    kinds = ("first_response", "resolution")
    return csvio.download(
        "agents",
        ["day", "group", "id", "name", "conversations", "resolved", *_timing_columns(*kinds)],
        [
            [
                d["day"].isoformat(),
                d["group"],
                d["id"],
                display_name(d["group"], d["id"], names.get((d["group"], d["id"]))),
                d["conversations"],
                d["resolved"],
                *_timing_cells(d, *kinds),
            ]
            for d in days
        ],
    )


class CsatFigures(BaseModel):
    answered: int = Field(description="surveys answered")
    average: float | None = Field(description="mean rating, 1-5")
    satisfied_share: float | None = Field(description="share of 4 and 5 ratings, 0-1")


class CsatTotals(CsatFigures):
    distribution: dict[str, int] = Field(description='answers per rating, "1".."5"')
    asked: int = Field(description="surveys sent in the range")
    skipped: int = Field(description="surveys not sent (window, consent), with a reason")
    response_rate: float | None = Field(description="answered share of those sent, 0-1")


class SlaTotals(BaseModel):
    breaches: int = Field(description="targets that fell due in the range and were missed")
    conversations: int
    first_response: int
    next_response: int
    answered_late: int
    unanswered: int


class ServiceAgent(CsatFigures):
    agent_id: int | None = Field(description="None: nobody was assigned")
    name: str | None
    sla_breaches: int


class ServiceDay(CsatFigures):
    day: date
    sla_breaches: int


class ServiceReport(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    from_: date = Field(alias="from")
    to: date
    csat: CsatTotals
    sla: SlaTotals
    agents: list[ServiceAgent]
    series: list[ServiceDay]


@router.get("/service", response_model=ServiceReport)
async def service_report(f: F, rt: RT, format: Format = "json") -> Any:
    """CSAT (answered surveys: average, share of 4-5, distribution, response rate) and SLA
    (missed targets by due day: first/next response, answered late or not yet), per day and
    per agent. The CSV is one line per day."""
    async with rt.db.read() as s:
        r = await q.service(s, f)
    if format == "json":
        return ServiceReport.model_validate(r)
    return csvio.download(
        "service",
        ["day", "csat_answered", "csat_average", "csat_satisfied_share", "sla_breaches"],
        [
            [d["day"], d["answered"], d["average"], d["satisfied_share"], d["sla_breaches"]]
            for d in r["series"]
        ],
    )


class CampaignReportRow(ReportOut):
    name: str


class CampaignsReportOut(RangeOut):
    currency: str = Field(description="The costs' currency (the SMS price table's)")
    campaigns: list[CampaignReportRow]


CAMPAIGN_COLUMNS = [
    "campaign_id",
    "name",
    "state",
    "recipients",
    "sent",
    "delivered",
    "read",
    "failed",
    "skipped",
    "delivery_rate",
    "read_rate",
    "replies",
    "opt_outs",
    "fallbacks",
    "cost",
]


@router.get("/campaigns", response_model=CampaignsReportOut)
async def campaigns_report(f: F, rt: RT, format: Format = "json") -> Any:
    """Each campaign launched in the range with its report, side by side."""
    async with rt.db.read() as s:
        r = await q.campaigns(s, f)
    if format == "json":
        return r

    def line(c: dict[str, Any]) -> list[Any]:
        # The campaign's keys, with its recipients per state (`recipients`: all of them).
        flat = {**c["counts"], "recipients": c["counts"].get("total"), **c}
        return [flat.get(column) for column in CAMPAIGN_COLUMNS]

    return csvio.download("campaigns", CAMPAIGN_COLUMNS, [line(c) for c in r["campaigns"]])


@router.get("/export/conversations.csv")
async def export_conversations(f: F, rt: RT) -> Response:
    """One row per conversation created in the range (timings, channels, agent, labels,
    cost), streamed page by page. The channel filter matches any channel the conversation
    used."""
    return csvio.download("conversations-export", q.EXPORT_COLUMNS, _export(rt, f))


async def _export(rt: Runtime, f: q.Filters) -> AsyncIterator[list[list[Any]]]:
    async with rt.db.read() as s:
        async for rows in q.export_rows(s, f):
            yield [[row[c] for c in q.EXPORT_COLUMNS] for row in rows]
