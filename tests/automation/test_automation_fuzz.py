"""Schemathesis over the automation and business-hours operations only, with more examples
than the API-wide run: whatever JSON they are sent, they answer 2xx or a 4xx, never a 5xx."""

from __future__ import annotations

import re
import subprocess

from tests.security.conftest import LiveServer, live_server
from tests.security.test_schemathesis import SCHEMATHESIS

__all__ = ["live_server"]


def test_automation_operations_never_answer_5xx(live_server: LiveServer) -> None:
    result = subprocess.run(
        [
            SCHEMATHESIS,
            "run",
            f"{live_server.url}/api/v1/openapi.json",
            "--checks",
            "not_a_server_error",
            "--header",
            f"Authorization: Bearer {live_server.token}",
            "--include-path-regex",
            "(automation|business_hours)",
            "--max-examples",
            "60",
            "--request-timeout",
            "20",
            "--generation-deterministic",
            "--workers",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    out = result.stdout + result.stderr
    details = out[out.find("FAILURES") :] if "FAILURES" in out else out[-6000:]
    assert result.returncode == 0, details[:8000]
    generated = re.search(r"(\d+) generated", out)
    assert generated and int(generated.group(1)) > 100, out[-2000:]
