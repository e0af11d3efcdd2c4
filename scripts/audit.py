"""Dependency audit: every installed package of the project's environment against known
vulnerabilities (pip-audit, PyPI's advisory data).

    .venv/bin/python scripts/audit.py

Exit codes: 0 — audited, nothing known; 1 — vulnerable packages (listed), or the audit could
not run and TIDINGS_REQUIRE_AUDIT=1; 3 — the audit could not run (no vulnerability data
reachable: offline, or an index proxy without PyPI's JSON API). `scripts/check` shows 3 as
"skip" with the reason instead of pretending the audit passed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

NOT_RUN = 3


def main() -> int:
    pip_audit = Path(sys.executable).with_name("pip-audit")
    if not pip_audit.exists():
        print("dependency audit: pip-audit is not installed (pip install -e '.[dev]')")
        return 1
    argv = [str(pip_audit), "-s", "pypi", "-f", "json", "--progress-spinner", "off"]
    try:
        proc = subprocess.run(  # noqa: S603 — our own venv's pip-audit, fixed arguments
            argv, capture_output=True, text=True, timeout=600, check=False
        )
    except subprocess.TimeoutExpired:
        return not_run("pip-audit did not finish within 600 s")
    try:
        report = json.loads(proc.stdout)
    except json.JSONDecodeError:
        return not_run(f"pip-audit failed (exit {proc.returncode}): {proc.stderr.strip()[-500:]}")
    deps = report.get("dependencies", [])
    audited = [d for d in deps if "vulns" in d]
    skipped = [d for d in deps if "skip_reason" in d]
    vulnerable = [d for d in audited if d["vulns"]]
    if vulnerable:
        print(f"dependency audit: {len(vulnerable)} vulnerable package(s)")
        for d in vulnerable:
            for v in d["vulns"]:
                fixed = ", ".join(v.get("fix_versions") or []) or "no fixed version yet"
                print(f"  {d['name']} {d.get('version', '?')}: {v['id']} (fixed in {fixed})")
        return 1
    if not audited:
        reason = skipped[0]["skip_reason"] if skipped else "no packages found"
        return not_run(f"no advisory data for any of {len(deps)} packages (e.g. {reason})")
    own = [d for d in skipped if d["name"] == "tidings"]
    others = [d for d in skipped if d["name"] != "tidings"]
    print(
        f"dependency audit: {len(audited)} packages audited, no known vulnerabilities"
        + (f"; {len(others)} not found in the advisory data" if others else "")
        + ("; tidings itself is local" if own else "")
    )
    for d in others:
        print(f"  not audited: {d['skip_reason']}")
    return 0


def not_run(reason: str) -> int:
    print(f"dependency audit NOT RUN: {reason}")
    return 1 if os.environ.get("TIDINGS_REQUIRE_AUDIT") == "1" else NOT_RUN


if __name__ == "__main__":
    sys.exit(main())
