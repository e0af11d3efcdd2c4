"""WeChat signatures and safe-mode crypto against the official sample vectors
(docs/channels/wechat.md#safe-mode-crypto) and wechatpy's published test vectors."""

from __future__ import annotations

import pytest

from tidings.channels.wechat import crypto

SAMPLE_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"


def test_query_signature_vectors() -> None:
    # Official "消息推送" doc (URL check and plain POST) and wechatpy tests/test_utils.py.
    assert crypto.signature("AAAAA", "1714036504", "1514711492") == (
        "f464b24fc39322e44b38aa78f5edd27bd1441696"
    )
    assert crypto.signature("AAAAA", "1714037059", "486452656") == (
        "899cf89e464efb63f54ddac96b0a0a235f53aa78"
    )
    assert crypto.signature("test", "1410685589", "test") == (
        "f21891de399b4e33a1a93c9a7b8a8fffb5a443ff"
    )


def test_official_sample_encrypt_a_a1() -> None:
    out = crypto.encrypt(
        SAMPLE_KEY, "wxb11529c136998cb6", "我是中文abcd123".encode(), b"aaaabbbbccccdddd"
    )
    assert out == (
        "jn1L23DB+6ELqJ+6bruv21Y6MD7KeIfP82D6gU39rmkgczbWwt5+3bnyg5K55bgVtVzd832WzZGMhkP72vVOfg=="
    )
    assert crypto.decrypt(SAMPLE_KEY, "wxb11529c136998cb6", out) == "我是中文abcd123".encode()


def test_official_verify_url_a_b() -> None:
    echostr = (
        "P9nAzCzyDtyTWESHep1vC5X9xho/qYX3Zpb4yKa9SKld1DsH3Iyt3tP3zNdtp+4RPcs8TgAE7OaBO+FZXvnaqQ=="
    )
    assert crypto.signature("QDG6eK", "1409659589", "263014780", echostr) == (
        "5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3"
    )
    key = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"
    assert crypto.decrypt(key, "wx5823bf96d3bd56c7", echostr) == b"1616140317555161061"
    with pytest.raises(crypto.CryptoError, match="another AppID"):
        crypto.decrypt(key, "wx0000000000000000", echostr)


def test_official_doc_reply_a_e() -> None:
    encrypt = crypto.encrypt(
        "A" * 43,
        "wx134c8103faa5a59e",
        b"<xml><demo_resp>[CDATA[good luck]]</demo_resp></xml>",
        b"999951349e8ee746",
    )
    assert encrypt == (
        "hE8R6mGXHkJJjU72KxzKUd1GEkKJaEZq7vRL8XgK3o+00k8JGq6+pZJUIlTSyhsX+bxIBQ72g3GyvDdIZcr6+3HA"
        "ZbSvPT9t/o11MI7d6WELwqrGd7jMnV0zv3Zc9Nq7"
    )
    assert crypto.signature("AAAAA", "1713424427", "415670741", encrypt) == (
        "03e0812039325c2712ef5f0f980fd14c70d6e307"
    )


W_KEY = "kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR"
W_ID = "wx49f0ab532d5d035a"


def test_wechatpy_encrypt_a_w1() -> None:
    reply = (
        "<xml>\n<MsgType><![CDATA[text]]></MsgType>\n<Content><![CDATA[test]]></Content>\n"
        "<FromUserName><![CDATA[wx49f0ab532d5d035a]]></FromUserName>\n"
        "<ToUserName><![CDATA[messense]]></ToUserName>\n<AgentID>1</AgentID>\n"
        "<CreateTime>1411525903</CreateTime>\n</xml>"
    )
    encrypt = crypto.encrypt(W_KEY, W_ID, reply.encode(), b"1234567890123456")
    assert encrypt == (
        "9s4gMv99m88kKTh/H8IdkOiMg6bisoy3ypwy9H4hvSPe9nsGaqyw5hhSjdYbcrKk+j3nba4HMOTzHrluLBYqxgNc"
        "BqGsL8GqxlhZgURnAtObvesEl5nZ+uBE8bviY0LWke8Zy9V/QYKxNV2FqllNXcfmstttyIkMKCCmVbCFM2JTF5wY"
        "0nFhHZSjPUL2Q1qvSUCUld+/WIXrx0oyKQmpB6o8NRrrNrsDf03oxI1p9FxUgMnwKKZeOA/uu+2IEvEBtb7muXsV"
        "bwbgX05UPPJvFurDXafG0RQyPR+mf1nDnAtQmmNOuiR5MIkdQ39xn1vWwi1O5oazPoQJz0nTYjxxEE8kv3kFxtAG"
        "VRe3ypD3WeK2XeFYFMNMpatF9XiKzHo3"
    )
    assert crypto.signature("123456", "1411525903", "461056294", encrypt) == (
        "407518b7649e86ef23978113f92d27afa9296533"
    )


def test_wechatpy_decrypt_a_w2() -> None:
    encrypt = (
        "RgqEoJj5A4EMYlLvWO1F86ioRjZfaex/gePD0gOXTxpsq5Yj4GNglrBb8I2BAJVODGajiFnXBu7mCPatfjsu6IHC"
        "rsTyeDXzF6Bv283dGymzxh6ydJRvZsryDyZbLTE7rhnus50qGPMfp2wASFlzEgMW9z1ef/RD8XzaFYgm7iTdaXpX"
        "aG4+BiYyolBug/gYNx410cvkKR2/nPwBiT+P4hIiOAQqGp/TywZBtDh1yCF2KOd0gpiMZ5jSw3e29mTvmUHzkVQi"
        "MS6td7vXUaWOMZnYZlF3So2SjHnwh4jYFxdgpkHHqIrH/54SNdshoQgWYEvccTKe7FS709/5t6NMxuGhcUGAPOQi"
        "pvWTT4dShyqio7mlsl5noTrb++x6En749zCpQVhDpbV6GDnTbcX2e8K9QaNWHp91eBdCRxthuL0="
    )
    assert crypto.signature("123456", "1411525903", "461056294", encrypt) == (
        "74d92dfeb87ba7c714f89d98870ae5eb62dff26d"
    )
    plain = crypto.decrypt(W_KEY, W_ID, encrypt).decode()
    assert "<FromUserName><![CDATA[messense]]></FromUserName>" in plain
    assert "<Content><![CDATA[test]]></Content>" in plain
    assert "<MsgId>4363689963896700987</MsgId>" in plain


def test_padding_is_to_32_byte_blocks() -> None:
    # 16 + 4 + 12 + 18 = 50 bytes → padded to 64 with 14 bytes of 0x0e (PKCS#7, block 32).
    import base64

    out = crypto.encrypt(SAMPLE_KEY, "wxb11529c136998cb6", b"x" * 12, b"r" * 16)
    assert len(base64.b64decode(out)) == 64
    # Exactly 64 bytes of plaintext get a whole extra block of 32.
    out = crypto.encrypt(SAMPLE_KEY, "wxb11529c136998cb6", b"x" * 26, b"r" * 16)
    assert len(base64.b64decode(out)) == 96


def test_wrong_key_and_junk_fail_cleanly() -> None:
    good = crypto.encrypt(SAMPLE_KEY, "wxb11529c136998cb6", b"hello", b"r" * 16)
    with pytest.raises(crypto.CryptoError):
        crypto.decrypt("B" * 43, "wxb11529c136998cb6", good)
    with pytest.raises(crypto.CryptoError, match="base64"):
        crypto.decrypt(SAMPLE_KEY, "wxb11529c136998cb6", "not base64 at all!")
    with pytest.raises(crypto.CryptoError, match="blocks"):
        crypto.decrypt(SAMPLE_KEY, "wxb11529c136998cb6", "YWJj")
