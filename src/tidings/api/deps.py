"""FastAPI dependencies shared by the API routers: the runtime, the signed-in principal and
the admin-only principal. Route modules import these aliases instead of redefining them."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from tidings.access import Principal, require_admin
from tidings.api.auth import authenticate
from tidings.runtime import Runtime


def runtime(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt


async def admin_only(who: Annotated[Principal, Depends(authenticate)]) -> Principal:
    require_admin(who)
    return who


RT = Annotated[Runtime, Depends(runtime)]
Who = Annotated[Principal, Depends(authenticate)]
Admin = Annotated[Principal, Depends(admin_only)]
