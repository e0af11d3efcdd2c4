"""`tidings reports ...`: maintenance of the report tables.

    tidings reports status     marks waiting for the rollup job (JSON)
    tidings reports drain      apply every waiting mark now
    tidings reports rebuild    recompute every report row from the raw tables (after a bulk
                               load, or to apply changed business hours to old conversations)

Wiring (cli.py): `reports_cli.register(sub)` and `"reports": reports_cli.cmd_reports`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from tidings.config import Settings
from tidings.runtime import Runtime, one_shot


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("reports", help="report tables: status, drain, rebuild")
    p.add_argument("action", choices=("status", "drain", "rebuild"))


def cmd_reports(settings: Settings, args: argparse.Namespace) -> int:
    from tidings.reports import rollup

    async def go(rt: Runtime) -> dict[str, Any]:
        if args.action == "status":
            return {"pending_marks": await rollup.pending(rt)}
        if args.action == "drain":
            return {"marks_applied": await rollup.drain(rt)}

        def progress(done: int, total: int) -> None:
            print(f"{done}/{total} conversations", file=sys.stderr, flush=True)

        return {"conversations": await rollup.rebuild(rt.db, progress=progress)}

    print(json.dumps(asyncio.run(one_shot(settings, go))))
    return 0
