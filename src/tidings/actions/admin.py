"""Workspace set-up: bootstrap, channels, API tokens, outgoing-webhook subscriptions."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime
from typing import Any

from argon2 import PasswordHasher
from pydantic import ValidationError
from sqlalchemy import func, select

from tidings.access import ALL_SCOPES, SCOPES, Principal, can_see_inbox, require_admin
from tidings.actions.base import WEBHOOK_EVENTS, audit, audit_as, transaction
from tidings.channels import webhook_setup
from tidings.channels.registry import get_adapter, kinds
from tidings.domain.enums import Role
from tidings.domain.errors import Forbidden, InvalidInput
from tidings.egress import EgressRefused
from tidings.runtime import ChannelInfo, Runtime
from tidings.storage.models import (
    Agent,
    ApiToken,
    Channel,
    Inbox,
    InboxMember,
    WebhookSubscription,
    Workspace,
)
from tidings.storage.types import utcnow

hasher = PasswordHasher()


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return "tid_" + secrets.token_urlsafe(32)


async def bootstrap(
    rt: Runtime, email: str, password: str, workspace_name: str = "My workspace"
) -> dict[str, Any]:
    """Create the first workspace, owner, inbox and an API token, unless a workspace exists.

    Returns the ids; `api_token` is only present (and only shown) when it was just created."""
    async with transaction(rt) as tx:
        s = tx.session
        existing = await s.scalar(select(Workspace).order_by(Workspace.id).limit(1))
        if existing is not None:
            owner = await s.scalar(
                select(Agent)
                .where(Agent.workspace_id == existing.id, Agent.role == Role.OWNER)
                .order_by(Agent.id)
            )
            inbox_id = await s.scalar(
                select(func.min(Inbox.id)).where(Inbox.workspace_id == existing.id)
            )
            return {
                "created": False,
                "workspace_id": existing.id,
                "agent_id": owner.id if owner else None,
                "inbox_id": inbox_id,
                "email": owner.email if owner else None,
            }
        ws = Workspace(name=workspace_name, created_at=utcnow())
        s.add(ws)
        await s.flush()
        agent = Agent(
            workspace_id=ws.id,
            email=email.strip().lower(),
            name=email.split("@")[0],
            password_hash=hasher.hash(password),
            role=Role.OWNER,
            availability="online",
            active=True,
            created_at=utcnow(),
        )
        inbox = Inbox(workspace_id=ws.id, name="Support", created_at=utcnow())
        s.add_all([agent, inbox])
        await s.flush()
        s.add(InboxMember(inbox_id=inbox.id, agent_id=agent.id))
        token = new_token()
        s.add(
            ApiToken(
                workspace_id=ws.id,
                agent_id=agent.id,
                name="bootstrap",
                token_hash=hash_token(token),
                created_at=utcnow(),
            )
        )
        audit_as(tx, ws.id, agent.id, "bootstrap", "workspace", ws.id)
        return {
            "created": True,
            "workspace_id": ws.id,
            "agent_id": agent.id,
            "inbox_id": inbox.id,
            "email": agent.email,
            "api_token": token,
        }


async def create_api_token(rt: Runtime, who: Principal, name: str) -> str:
    """A new token of `who`'s agent with `who`'s scopes; the token itself."""
    return (await issue_api_token(rt, who, name))[1]


async def issue_api_token(
    rt: Runtime,
    who: Principal,
    name: str,
    scopes: list[str] | None = None,
    expires_at: datetime | None = None,
) -> tuple[ApiToken, str]:
    """A new token of `who`'s agent, and the token itself (shown once, stored hashed). Its
    scopes default to the caller's and may not exceed them; a token minted by a token expires
    no later than it."""
    wanted = frozenset(scopes) if scopes is not None else who.scopes
    unknown = sorted(wanted - ALL_SCOPES)
    if unknown or not wanted:
        raise InvalidInput(f"scopes: one or more of {', '.join(SCOPES)}")
    if not wanted <= who.scopes:
        raise Forbidden("a token cannot create a token with more scopes than its own")
    if expires_at is not None and expires_at.tzinfo is None:
        raise InvalidInput("expires_at: give a time zone (e.g. 2027-01-01T00:00:00Z)")
    if expires_at is not None and expires_at <= utcnow():
        raise InvalidInput("expires_at: must be in the future")
    token = new_token()
    async with transaction(rt) as tx:
        if who.token_id is not None:
            parent = await tx.session.get(ApiToken, who.token_id)
            limit = parent.expires_at if parent is not None else None
            if limit is not None and (expires_at is None or expires_at > limit):
                expires_at = limit
        row = ApiToken(
            workspace_id=who.workspace_id,
            agent_id=who.agent_id,
            name=name,
            token_hash=hash_token(token),
            scopes=" ".join(s for s in SCOPES if s in wanted),
            expires_at=expires_at,
            created_at=utcnow(),
        )
        tx.session.add(row)
        await tx.session.flush()
    return row, token


def validate_config(kind: str, config: dict[str, Any]) -> dict[str, Any]:
    try:
        adapter = get_adapter(kind)
    except Exception:
        raise InvalidInput(
            f"kind: unknown channel kind {kind!r}; one of {', '.join(kinds())}"
        ) from None
    try:
        model = adapter.config_model.model_validate(config)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise InvalidInput(f"config.{where}: {first['msg']}") from None
    return model.model_dump(mode="json")


def public_config(kind: str, config: dict[str, Any]) -> dict[str, Any]:
    """Config as shown to API clients: secrets masked, never returned."""
    secret = get_adapter(kind).secret_fields
    return {k: ("••••" if k in secret and v else v) for k, v in config.items()}


async def create_channel(
    rt: Runtime,
    who: Principal,
    kind: str,
    name: str,
    config: dict[str, Any],
    inbox_id: int | None,
    *,
    set_webhook: bool = True,
) -> Channel:
    """Connect a channel. `set_webhook=False` skips pointing the provider's webhook at Tidings
    (Viber's set_webhook): the sandbox's demo channels, whose binding sets it in process."""
    require_admin(who)
    clean = validate_config(kind, config)
    if not name.strip():
        raise InvalidInput("name: must not be empty")
    async with transaction(rt) as tx:
        s = tx.session
        if inbox_id is None:
            inbox_id = await s.scalar(
                select(func.min(Inbox.id)).where(Inbox.workspace_id == who.workspace_id)
            )
            if inbox_id is None:
                inbox = Inbox(workspace_id=who.workspace_id, name="Support", created_at=utcnow())
                s.add(inbox)
                await s.flush()
                inbox_id = inbox.id
        else:
            chosen = await s.get(Inbox, inbox_id)
            if chosen is None or not can_see_inbox(who, chosen.workspace_id, chosen.id):
                raise InvalidInput(f"inbox_id: no inbox {inbox_id} in this workspace")
        channel = Channel(
            workspace_id=who.workspace_id,
            inbox_id=inbox_id,
            kind=kind,
            name=name.strip(),
            config_encrypted=rt.box.encrypt(clean),
            active=True,
            created_at=utcnow(),
        )
        s.add(channel)
        await s.flush()
        audit(tx, who, "channel.create", "channel", channel.id, {"kind": kind})
    rt.channels.invalidate(channel.id)
    info = await rt.channels.get(channel.id)
    if info is not None:
        for hook in rt.channel_hooks:
            await hook(info)
        if set_webhook:
            await do_register_webhook(rt, info, who.agent_id)
    return channel


async def register_webhooks(rt: Runtime, channel_id: int | None = None) -> list[dict[str, Any]]:
    """Set the webhook again for every active channel whose adapter sets its own (or just
    `channel_id`): run after TIDINGS_PUBLIC_URL changes (`tidings set-webhooks`)."""
    results: list[dict[str, Any]] = []
    for info in await active_channels(rt, channel_id):
        if not isinstance(info.adapter, webhook_setup.WebhookRegistrar):
            continue
        reason = await do_register_webhook(rt, info, None)
        url = rt.settings.webhook_url(info.kind, info.id)
        results.append({"channel_id": info.id, "url": url, **({"error": reason} if reason else {})})
    return results


async def active_channels(rt: Runtime, channel_id: int | None = None) -> list[ChannelInfo]:
    """Every active channel (or just `channel_id`, if active), in id order."""
    async with rt.db.read() as s:
        query = select(Channel.id).where(Channel.active.is_(True)).order_by(Channel.id)
        if channel_id is not None:
            query = query.where(Channel.id == channel_id)
        ids = (await s.scalars(query)).all()
    return [info for cid in ids if (info := await rt.channels.get(cid)) is not None]


async def do_register_webhook(
    rt: Runtime, info: ChannelInfo, actor_agent_id: int | None
) -> str | None:
    """Point the provider's webhook at this channel where the adapter does that itself
    (`channels.webhook_setup`, Viber's set_webhook). A refusal does not undo the channel; it
    is recorded in the audit log with the provider's reason, and returned."""
    url = rt.settings.webhook_url(info.kind, info.id)
    reason = await webhook_setup.register(info.adapter, info.config, url, rt.http)
    if not isinstance(info.adapter, webhook_setup.WebhookRegistrar):
        return None
    async with transaction(rt) as tx:
        audit_as(
            tx,
            info.workspace_id,
            actor_agent_id,
            "channel.webhook_failed" if reason else "channel.webhook_set",
            "channel",
            info.id,
            {"url": url, "reason": reason} if reason else {"url": url},
        )
    return reason


async def check_subscription_target(rt: Runtime, url: str | None, events: list[str] | None) -> None:
    """An outgoing webhook's URL (http(s), allowed by the egress policy) and its events (known,
    at least one); None leaves that part unchecked (an update that does not change it)."""
    if url is not None:
        if not url.startswith(("http://", "https://")):
            raise InvalidInput("url: must be an http(s) URL")
        try:
            await rt.egress.policy.check_destination(url)
        except EgressRefused as exc:
            raise InvalidInput(f"url: {exc}") from None
    if events is not None and (not events or any(e not in WEBHOOK_EVENTS for e in events)):
        raise InvalidInput(f"events: choose from {', '.join(WEBHOOK_EVENTS)}")


async def create_subscription(
    rt: Runtime, who: Principal, url: str, events: list[str], secret: str | None
) -> tuple[WebhookSubscription, str]:
    require_admin(who)
    await check_subscription_target(rt, url, events)
    secret = secret or secrets.token_urlsafe(32)
    async with transaction(rt) as tx:
        sub = WebhookSubscription(
            workspace_id=who.workspace_id,
            url=url,
            secret_encrypted=rt.box.encrypt(secret),
            events=events,
            active=True,
            created_at=utcnow(),
        )
        tx.session.add(sub)
        await tx.session.flush()
    return sub, secret
