"""FastAPI dependencies shared by the API routers."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from tidings.runtime import Runtime


def runtime(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt


RT = Annotated[Runtime, Depends(runtime)]
