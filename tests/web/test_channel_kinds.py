"""The browser keeps no list of channel kinds (issue #17 item 8): every registered kind's
capabilities reach it from the adapter registry, each kind's icon is in the served sprite, and
no page script names a kind."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from tidings.channels.optional import PROTOCOLS, optional_capabilities
from tidings.channels.registry import get_adapter, kinds

STATIC = Path(__file__).resolve().parents[2] / "src" / "tidings" / "web" / "static"


async def test_every_registered_kind_reaches_the_browser(api: httpx.AsyncClient) -> None:
    served = (await api.get("/api/v1/channel-kinds")).json()
    boot = (await api.get("/api/v1/ui/bootstrap")).json()
    assert [k["kind"] for k in served] == kinds()
    assert boot["kinds"] == served
    sprite = (await api.get("/static/icons.svg")).text
    colours = set()
    for k in served:
        caps = get_adapter(k["kind"]).capabilities
        assert k["label"] == get_adapter(k["kind"]).label
        assert k["sms"] == caps.sms
        assert k["phone_addressed"] == (caps.sms or caps.phone_addressed)
        assert k["campaign_text"] == caps.campaign_text
        assert k["templates"] == caps.supports_templates
        assert k["service_window_hours"] == caps.service_window_hours
        assert f'<symbol id="{k["icon"]}"' in sprite, k
        assert k["optional"] == optional_capabilities(get_adapter(k["kind"]))
        colours.add(k["color"])
    assert len(colours) == len(served), "every kind needs its own colour"
    # What the campaign editor used to hard-code, now answered by the adapters.
    by_kind = {k["kind"]: k for k in served}
    assert by_kind["whatsapp"]["phone_addressed"] and not by_kind["whatsapp"]["campaign_text"]
    assert {k for k, v in by_kind.items() if v["sms"]} == {"twilio", "vonage", "smpp"}


async def test_channel_kinds_needs_a_sign_in(api: httpx.AsyncClient) -> None:
    async with httpx.AsyncClient(base_url=str(api.base_url)) as anon:
        assert (await anon.get("/api/v1/channel-kinds")).status_code == 401


def test_no_page_script_names_a_channel_kind() -> None:
    names = "|".join(re.escape(k) for k in kinds())
    quoted = re.compile(rf"[\"'`]({names})[\"'`]")
    for path in STATIC.rglob("*.js"):
        # `svg("line", ...)` draws an SVG line (reports.js), not the LINE channel.
        hits = quoted.findall(path.read_text().replace('svg("line"', "svg("))
        assert not hits, f"{path.name} names channel kinds {hits}: read them from /channel-kinds"


def test_every_icon_a_page_names_is_in_the_sprite() -> None:
    sprite = (STATIC / "icons.svg").read_text()
    for path in STATIC.rglob("*.js"):
        for name in re.findall(r"\bicon\(\"([a-z0-9-]+)\"", path.read_text()):
            assert f'<symbol id="{name}"' in sprite, f"{path.name}: icon {name!r} not in icons.svg"


def test_every_optional_protocol_is_listed_next_to_the_base() -> None:
    """A new optional protocol in channels/ is listed in channels/optional.py (and so reaches
    the browser), and what the index says matches the adapters."""
    channels = STATIC.parents[1] / "channels"
    defined = set()
    for path in channels.glob("*.py"):
        defined |= set(re.findall(r"^class (\w+)\(Protocol\):", path.read_text(), re.M))
    defined.discard("ChannelAdapter")
    assert defined == {p.__name__ for p in PROTOCOLS.values()}
    assert "typing" in optional_capabilities(get_adapter("telegram"))  # send_typing
    assert "typing" in optional_capabilities(get_adapter("messenger"))  # typing_on signal
    assert "typing" not in optional_capabilities(get_adapter("twilio"))
