"""FastAPI dependencies shared by the API routers: the runtime, the signed-in principal and
the admin-only principal, and an upload's bytes. Route modules import these instead of
redefining them."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from tidings.access import Principal, require_admin
from tidings.api.auth import authenticate
from tidings.domain.errors import InvalidInput
from tidings.runtime import Runtime


def runtime(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt


async def admin_only(who: Annotated[Principal, Depends(authenticate)]) -> Principal:
    require_admin(who)
    return who


async def uploaded(request: Request, no_file: str) -> bytes:
    """An upload's bytes: the body itself (e.g. `text/csv`), or a multipart form's `file`
    field (`no_file`: the 422's message when the form has none)."""
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        upload = (await request.form()).get("file")
        if upload is None or isinstance(upload, str):
            raise InvalidInput(no_file)
        return await upload.read()
    return await request.body()


RT = Annotated[Runtime, Depends(runtime)]
Who = Annotated[Principal, Depends(authenticate)]
Admin = Annotated[Principal, Depends(admin_only)]
