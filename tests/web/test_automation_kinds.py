"""Automation condition and action kinds live in one registry (issue 17 item 5,
`automation/kinds.py`): the API accepts exactly the registered kinds, Settings offers exactly
them (served by `GET /api/v1/automation/kinds`, drawn by one parameter editor each), and no
other Python module compares a value with a kind's name."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import httpx

from tidings.automation.kinds import ACTIONS, CONDITIONS

SRC = Path(__file__).resolve().parents[2] / "src" / "tidings"
PAGE = SRC / "web" / "static" / "settings" / "automation.js"


def _editor_keys(name: str) -> list[str]:
    """The keys of the page script's `const NAME = { kind: (...) => ..., ... }`."""
    script = PAGE.read_text()
    body = script.split(f"const {name} = {{", 1)[1].split("\n};", 1)[0]
    return re.findall(r"^  ([a-z_]+): ", body, flags=re.M)


async def test_the_api_accepts_and_serves_exactly_the_registered_kinds(
    api: httpx.AsyncClient,
) -> None:
    served = (await api.get("/api/v1/automation/kinds")).json()
    assert [k["type"] for k in served["conditions"]] == list(CONDITIONS)
    assert [k["type"] for k in served["actions"]] == list(ACTIONS)
    assert [k["type"] for k in served["actions"] if not k["macro"]] == ["webhook"]
    assert all(k["label"] for k in served["conditions"] + served["actions"])

    base = {"name": "probe", "event": "message.received", "actions": [{"type": "resolve"}]}
    for section, registry in (("conditions", CONDITIONS), ("actions", ACTIONS)):
        refused = await api.post(
            "/api/v1/automation/rules", json={**base, section: [{"type": "launch_rocket"}]}
        )
        assert refused.status_code == 422
        listed = refused.json()["error"]["message"].split("one of ", 1)[1].split(", ")
        assert listed == list(registry)
    macro = await api.post(
        "/api/v1/macros",
        json={"name": "m", "actions": [{"type": "webhook", "url": "https://x.io"}]},
    )
    assert macro.status_code == 422 and "webhook" in macro.text
    # Nothing was stored by the refusals.
    assert (await api.get("/api/v1/automation/rules")).json()["data"] == []
    assert (await api.get("/api/v1/macros")).json() == []


async def test_the_kinds_need_a_sign_in(api: httpx.AsyncClient) -> None:
    async with httpx.AsyncClient(base_url=str(api.base_url)) as anon:
        assert (await anon.get("/api/v1/automation/kinds")).status_code == 401


def test_settings_draws_a_parameter_editor_for_each_registered_kind() -> None:
    assert sorted(_editor_keys("CONDITION_PARAMS")) == sorted(CONDITIONS)
    assert sorted(_editor_keys("ACTION_PARAMS")) == sorted(ACTIONS)
    # The list itself comes from the server: the page names no kind outside the editors
    # (a new row's default aside).
    script = PAGE.read_text()
    for name in {*CONDITIONS, *ACTIONS} - {"label", "inbox", "language"}:
        uses = re.findall(rf'["\']{name}["\']', script)
        assert len(uses) <= 1, f"{name} is named {len(uses)} times in automation.js"


def test_no_module_outside_the_registry_switches_on_a_kind() -> None:
    names = {*CONDITIONS, *ACTIONS}
    found = []
    for path in (SRC / "automation", SRC / "actions", SRC / "api"):
        for file in path.rglob("*.py"):
            if file.name == "kinds.py":
                continue
            for node in ast.walk(ast.parse(file.read_text())):
                if not isinstance(node, ast.Compare):
                    continue
                for side in [node.left, *node.comparators]:
                    items = (
                        side.elts if isinstance(side, ast.Tuple | ast.List | ast.Set) else [side]
                    )
                    for item in items:
                        if isinstance(item, ast.Constant) and item.value in names:
                            found.append(f"{file.relative_to(SRC)}:{node.lineno} {item.value}")
    assert found == []
