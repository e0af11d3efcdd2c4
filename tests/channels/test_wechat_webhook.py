"""WeChat push parsing: every message and event type of
docs/channels/wechat.md#push-messages-and-events into canonical events, dedupe keys
(docs/channels/wechat.md#duplicate-pushes), and hostile XML refused
(docs/channels/wechat.md#safe-mode-crypto)."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from tidings.channels.base import WebhookRequest
from tidings.channels.wechat import WeChatAdapter, WeChatConfig, crypto, webhook
from tidings.domain.enums import MessageKind, MessageStatus
from tidings.domain.errors import PayloadError, SignatureError
from tidings.domain.events import Ignored, InboundMessage, StatusUpdate

OPENID = "oia2TjjewbmiOUlr6X-1crbLOvLw"
HEAD = (
    "<xml><ToUserName><![CDATA[gh_123456789abc]]></ToUserName>"
    f"<FromUserName><![CDATA[{OPENID}]]></FromUserName><CreateTime>1714037059</CreateTime>"
)
AT = datetime.fromtimestamp(1714037059, UTC)
adapter = WeChatAdapter()


def doc(body: str) -> bytes:
    return f"{HEAD}{body}</xml>".encode()


def one(body: str) -> InboundMessage | StatusUpdate | Ignored:
    events = adapter.parse(None, doc(body))
    assert len(events) == 1
    return events[0]


def msg(body: str) -> InboundMessage:
    event = one(body)
    assert isinstance(event, InboundMessage)
    assert event.sender.address == OPENID
    assert event.occurred_at == AT
    return event


def test_text() -> None:
    m = msg(
        "<MsgType><![CDATA[text]]></MsgType><Content><![CDATA[你好 <b>hi</b>\nline]]></Content>"
        "<MsgId>6054768590064713728</MsgId>"
    )
    assert (m.kind, m.text, m.provider_message_id) == (
        MessageKind.TEXT,
        "你好 <b>hi</b>\nline",
        "6054768590064713728",
    )


def test_image_voice_video_shortvideo() -> None:
    image = msg(
        "<MsgType><![CDATA[image]]></MsgType><PicUrl><![CDATA[http://mmbiz/x.jpg]]></PicUrl>"
        "<MediaId><![CDATA[m1]]></MediaId><MsgId>1</MsgId>"
    )
    assert image.kind == MessageKind.MEDIA
    assert [(a.kind, a.provider_media_id, a.url) for a in image.attachments] == [
        ("image", "m1", "http://mmbiz/x.jpg")
    ]
    voice = msg(
        "<MsgType><![CDATA[voice]]></MsgType><MediaId><![CDATA[m2]]></MediaId>"
        "<Format><![CDATA[amr]]></Format><Recognition><![CDATA[腾讯微信团队]]></Recognition>"
        "<MsgId>2</MsgId>"
    )
    assert [(a.kind, a.mime_type, a.caption) for a in voice.attachments] == [
        ("audio", "audio/amr", "腾讯微信团队")
    ]
    assert voice.extra["recognition"] == "腾讯微信团队"
    for kind in ("video", "shortvideo"):
        video = msg(
            f"<MsgType><![CDATA[{kind}]]></MsgType><MediaId><![CDATA[m3]]></MediaId>"
            "<ThumbMediaId><![CDATA[t3]]></ThumbMediaId><MsgId>3</MsgId>"
        )
        assert [(a.kind, a.provider_media_id) for a in video.attachments] == [("video", "m3")]
        assert video.extra == {"type": kind, "thumb_media_id": "t3"}


def test_location_and_link() -> None:
    loc = msg(
        "<MsgType><![CDATA[location]]></MsgType><Location_X>23.134521</Location_X>"
        "<Location_Y>113.358803</Location_Y><Scale>20</Scale>"
        "<Label><![CDATA[位置信息]]></Label><MsgId>4</MsgId>"
    )
    assert loc.kind == MessageKind.LOCATION
    assert loc.extra["latitude"] == pytest.approx(23.134521)
    assert loc.extra["longitude"] == pytest.approx(113.358803)
    assert loc.text == "位置信息"
    link = msg(
        "<MsgType><![CDATA[link]]></MsgType><Title><![CDATA[公众平台官网链接]]></Title>"
        "<Description><![CDATA[desc]]></Description><Url><![CDATA[https://example.com/a]]></Url>"
        "<MsgId>5</MsgId>"
    )
    assert (link.kind, link.text) == (
        MessageKind.TEXT,
        "公众平台官网链接\ndesc\nhttps://example.com/a",
    )


def test_unknown_message_type_is_unsupported_not_a_crash() -> None:
    m = msg("<MsgType><![CDATA[hologram]]></MsgType><MsgId>6</MsgId>")
    assert (m.kind, m.extra) == (MessageKind.UNSUPPORTED, {"type": "hologram"})
    unknown_event = msg("<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[teleport]]></Event>")
    assert unknown_event.kind == MessageKind.UNSUPPORTED


def test_events() -> None:
    def ev(name: str, extra: str = "") -> InboundMessage | StatusUpdate | Ignored:
        return one(f"<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[{name}]]></Event>{extra}")

    sub = ev("subscribe", "<EventKey><![CDATA[qrscene_123123]]></EventKey><Ticket>TICKET</Ticket>")
    assert isinstance(sub, InboundMessage) and sub.kind == MessageKind.SYSTEM
    assert sub.extra["scene"] == "123123"
    assert sub.provider_message_id == f"event:{OPENID}:1714037059:subscribe"
    plain_sub = ev("subscribe")
    assert (
        isinstance(plain_sub, InboundMessage) and plain_sub.text == "Followed the Official Account"
    )
    unsub = ev("unsubscribe")
    assert isinstance(unsub, InboundMessage) and "Unfollowed" in (unsub.text or "")
    scan = ev("SCAN", "<EventKey><![CDATA[123123]]></EventKey><Ticket>T</Ticket>")
    assert isinstance(scan, InboundMessage) and scan.extra["scene"] == "123123"
    click = ev("CLICK", "<EventKey><![CDATA[V1001_TODAY_MUSIC]]></EventKey>")
    assert isinstance(click, InboundMessage) and click.extra["menu_key"] == "V1001_TODAY_MUSIC"
    assert isinstance(ev("VIEW", "<EventKey><![CDATA[https://x]]></EventKey>"), Ignored)
    report = "<Latitude>23.1</Latitude><Longitude>113.3</Longitude><Precision>119.3</Precision>"
    assert isinstance(ev("LOCATION", report), Ignored)
    done = ev(
        "TEMPLATESENDJOBFINISH", "<MsgID>200163836</MsgID><Status><![CDATA[success]]></Status>"
    )
    assert isinstance(done, StatusUpdate)
    assert (done.provider_message_id, done.status) == ("200163836", MessageStatus.DELIVERED)
    blocked = ev(
        "TEMPLATESENDJOBFINISH",
        "<MsgID>200163840</MsgID><Status><![CDATA[failed:user block]]></Status>",
    )
    assert isinstance(blocked, StatusUpdate) and blocked.status == MessageStatus.FAILED
    assert "blocked" in (blocked.error_reason or "")


def _request(body: bytes, query: dict[str, str]) -> WebhookRequest:
    return WebhookRequest("POST", "http://x/webhooks/wechat/1", {}, query, body)


def _signed(token: str, **extra: str) -> dict[str, str]:
    # Signed now: plain-mode pushes older than a few minutes are refused (issue #15, item 12).
    q = {"timestamp": str(int(time.time())), "nonce": "486452656", **extra}
    q["signature"] = crypto.signature(token, q["timestamp"], q["nonce"])
    return q


PLAIN = WeChatConfig(app_id="wx1", app_secret="s", token="AAAAA")


def test_dedupe_keys() -> None:
    text = doc("<MsgType><![CDATA[text]]></MsgType><Content>a</Content><MsgId>42</MsgId>")
    event = doc("<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[CLICK]]></Event>")
    keys = [adapter.split(PLAIN, _request(b, _signed("AAAAA")))[0].key for b in (text, event)]
    assert keys == ["msg:42", f"event:{OPENID}:1714037059:CLICK"]


@pytest.mark.parametrize(
    "body",
    [
        b'<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY x "boom">]>'
        b"<xml><ToUserName>&x;</ToUserName></xml>",
        b'<!DOCTYPE xml SYSTEM "http://evil/x.dtd"><xml><a>1</a></xml>',
        b'<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]>'
        b"<xml><c>&b;</c></xml>",
    ],
)
def test_dtd_and_entities_are_refused(body: bytes) -> None:
    with pytest.raises(PayloadError) as info:
        webhook.read_xml(body)
    assert info.value.code == "forbidden_xml"
    with pytest.raises(SignatureError):
        adapter.verify(PLAIN, _request(body, _signed("AAAAA")))


def test_plain_push_refused_when_channel_is_in_safe_mode() -> None:
    safe = WeChatConfig(app_id="wx1", app_secret="s", token="AAAAA", encoding_aes_key="A" * 43)
    body = doc("<MsgType><![CDATA[text]]></MsgType><Content>a</Content><MsgId>1</MsgId>")
    with pytest.raises(SignatureError, match="must be encrypted"):
        adapter.verify(safe, _request(body, _signed("AAAAA")))
    adapter.verify(PLAIN, _request(body, _signed("AAAAA")))  # the same push is fine in plain mode


def test_config_checks_the_aes_key() -> None:
    with pytest.raises(ValueError, match="43-character"):
        WeChatConfig(app_id="wx1", app_secret="s", token="t", encoding_aes_key="short")
