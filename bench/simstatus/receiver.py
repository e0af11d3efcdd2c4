"""A bare Starlette webhook receiver for `bench.simstatus`: answers 200 to every POST and
counts the POSTs and the statuses in them (`GET /count`, `POST /reset`).

    python -m bench.simstatus.receiver PORT
"""

from __future__ import annotations

import sys

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

counts = {"posts": 0, "statuses": 0}


async def hook(request: Request) -> Response:
    body = await request.body()
    counts["posts"] += 1
    # Each statuses[] element has exactly one `"status":"…"`; nothing else in the envelope does.
    counts["statuses"] += body.count(b'"status":"')
    return Response(status_code=200)


async def count(request: Request) -> Response:
    if request.method == "POST":
        counts.update(posts=0, statuses=0)
    return JSONResponse(counts)


app = Starlette(
    routes=[
        Route("/hook", hook, methods=["POST"]),
        Route("/count", count, methods=["GET", "POST"]),
    ]
)

if __name__ == "__main__":
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=int(sys.argv[1]),
        log_level="warning",
        access_log=False,
        loop="uvloop",
        http="httptools",
    )
