"""WeChat push signatures and the safe-mode message crypto (WXBizMsgCrypt), in
docs/channels/wechat.md#server-url-check-and-signatures and
docs/channels/wechat.md#safe-mode-crypto.

Pure functions over bytes and strings; the AES work is done by `cryptography`. Checked against
the official sample vectors in tests/channels/test_wechat_crypto.py.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import struct

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

# WeChat pads with PKCS#7 to 32-byte blocks, not AES's 16
# (docs/channels/wechat.md#safe-mode-crypto): pad bytes are 1..32.
BLOCK_BITS = 32 * 8


class CryptoError(Exception):
    """A push that does not decrypt or whose trailing AppID is not ours."""


def signature(*parts: str) -> str:
    """sha1 over the lexicographically sorted parts, concatenated; lowercase hex.

    With (token, timestamp, nonce) this is the query `signature`; with the `Encrypt` value added
    it is `msg_signature` (docs/channels/wechat.md#server-url-check-and-signatures).
    """
    return hashlib.sha1("".join(sorted(parts)).encode(), usedforsecurity=False).hexdigest()


def signature_matches(expected: str, given: str | None) -> bool:
    return given is not None and hmac.compare_digest(expected, given.strip().lower())


def aes_key(encoding_aes_key: str) -> bytes:
    try:
        key = base64.b64decode(encoding_aes_key + "=", validate=True)
    except binascii.Error:
        raise CryptoError("EncodingAESKey is not valid base64") from None
    if len(key) != 32:
        raise CryptoError("EncodingAESKey must decode to 32 bytes")
    return key


def _cipher(key: bytes) -> Cipher[modes.CBC]:
    # IV = the first 16 bytes of the key (docs/channels/wechat.md#safe-mode-crypto).
    return Cipher(algorithms.AES(key), modes.CBC(key[:16]))


def encrypt(encoding_aes_key: str, app_id: str, message: bytes, random: bytes | None = None) -> str:
    """Base64 ciphertext of `random(16) || len(message) as uint32 BE || message || app_id`."""
    key = aes_key(encoding_aes_key)
    prefix = os.urandom(16) if random is None else random
    if len(prefix) != 16:
        raise ValueError("random prefix must be 16 bytes")
    plain = prefix + struct.pack(">I", len(message)) + message + app_id.encode()
    padder = padding.PKCS7(BLOCK_BITS).padder()
    padded = padder.update(plain) + padder.finalize()
    enc = _cipher(key).encryptor()
    return base64.b64encode(enc.update(padded) + enc.finalize()).decode()


def decrypt(encoding_aes_key: str, app_id: str, ciphertext: str) -> bytes:
    """The message inside `ciphertext`; raises CryptoError unless it ends with our AppID."""
    key = aes_key(encoding_aes_key)
    try:
        raw = base64.b64decode(ciphertext, validate=True)
    except (binascii.Error, ValueError):
        raise CryptoError("Encrypt is not valid base64") from None
    if not raw or len(raw) % 16:
        raise CryptoError("Encrypt is not a whole number of AES blocks")
    dec = _cipher(key).decryptor()
    padded = dec.update(raw) + dec.finalize()
    pad = padded[-1]
    # Checked by hand rather than with cryptography's unpadder: WeChat's 32-byte blocks allow
    # pad values up to 32, and a wrong key must fail as "cannot decrypt", not as an exception.
    if not 1 <= pad <= 32 or padded[-pad:] != bytes([pad]) * pad:
        raise CryptoError("Encrypt does not decrypt with this EncodingAESKey (bad padding)")
    plain = padded[:-pad]
    if len(plain) < 20:
        raise CryptoError("decrypted push is too short")
    (length,) = struct.unpack(">I", plain[16:20])
    message, trailer = plain[20 : 20 + length], plain[20 + length :]
    if len(message) != length:
        raise CryptoError("decrypted push has an impossible length")
    # Official sample-lib error -40005: the trailing id must be our AppID.
    if not hmac.compare_digest(trailer, app_id.encode()):
        raise CryptoError("the encrypted push is for another AppID")
    return message
