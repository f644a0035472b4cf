"""Signed unsubscribe tokens: verifiable with the shop's secret alone, no database lookup.

A token is `<payload>.<signature>`, both base64url without padding:

- payload: `v1`, the message id, the recipient's address and locale, joined by U+001F;
- signature: the first 16 bytes of HMAC-SHA256(secret, "lojal-unsubscribe\\x00" + payload).

Changing one character of either part, or signing with another shop's secret, fails
verification (`UnsubscribeTokenError`). The recipient's address is readable in the token (it is
in the e-mail's own To: header anyway); it is signed, so it cannot be swapped for another.

The secret is the shop's one secret (`lojal.secrets.load_secrets`: `LOJAL_SECRET`, else the Prefect
Secret block `tracking.secret_block`, else the store's generated `<state>/secret.key`). During a
rotation `LOJAL_SECRET_PREVIOUS` still verifies tokens mailed before it; new tokens are always
signed with the current secret. Secrets are never logged and never part of an error message.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass

from lojal.errors import UnsubscribeTokenError
from lojal.secrets import Secrets, load_secrets  # noqa: F401 - the one secret rule, re-exported for callers

MAX_TOKEN_LENGTH = 1024
_VERSION = "v1"
_SEP = "\x1f"
_DOMAIN = b"lojal-unsubscribe\x00"
_SIG_BYTES = 16


@dataclass(frozen=True)
class UnsubscribeRequest:
    """What a verified token says: which message, which recipient, the page's language."""

    message_id: str
    email: str
    locale: str


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    if not text or any(c not in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_" for c in text):
        raise UnsubscribeTokenError("the token is not base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except ValueError:
        raise UnsubscribeTokenError("the token is not base64url") from None


def _signature(secret: bytes, payload: bytes) -> bytes:
    return hmac.new(secret, _DOMAIN + payload, hashlib.sha256).digest()[:_SIG_BYTES]


def make_unsubscribe_token(secrets: Secrets, message_id: str, email: str, locale: str = "en") -> str:
    """The token for one message to one recipient, signed with the current secret."""
    for name, value in (("message id", message_id), ("email", email), ("locale", locale)):
        if not value or _SEP in value:
            raise ValueError(f"{name} must be non-empty text without U+001F")
    payload = _SEP.join((_VERSION, message_id, email, locale)).encode("utf-8")
    return f"{_b64(payload)}.{_b64(_signature(secrets.current, payload))}"


def verify_unsubscribe_token(token: str, secrets: Secrets) -> UnsubscribeRequest:
    """The message and recipient a token names, or `UnsubscribeTokenError` when it is malformed,
    altered, forged or signed with a secret this shop does not hold. For shops with their own page."""
    if not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH or token.count(".") != 1:
        raise UnsubscribeTokenError("not an unsubscribe token")
    payload_text, signature_text = token.split(".")
    payload, signature = _unb64(payload_text), _unb64(signature_text)
    if payload_text != _b64(payload) or signature_text != _b64(signature):  # one spelling per token
        raise UnsubscribeTokenError("not an unsubscribe token")
    if not any(hmac.compare_digest(signature, _signature(s, payload)) for s in (secrets.current, *secrets.previous)):
        raise UnsubscribeTokenError("the token's signature does not match: altered, forged or from another shop")
    try:
        version, message_id, email, locale = payload.decode("utf-8").split(_SEP)
    except (UnicodeDecodeError, ValueError):
        raise UnsubscribeTokenError("the token's content is malformed") from None
    if version != _VERSION:
        raise UnsubscribeTokenError(f"unknown token version {version!r}")
    return UnsubscribeRequest(message_id, email, locale)


def unsubscribe_url(template: str, secrets: Secrets, message_id: str, email: str, locale: str = "en") -> str:
    """`template` (with `{token}`) with this message's signed token in it: what the pipeline puts in
    the footer and the List-Unsubscribe header."""
    return template.replace("{token}", make_unsubscribe_token(secrets, message_id, email, locale))
