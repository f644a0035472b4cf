"""SendGrid's signed Event Webhook: ECDSA P-256 (SHA-256) over `timestamp + raw body`.

SendGrid sends the signature (base64 DER) in `X-Twilio-Email-Event-Webhook-Signature` and the
Unix timestamp in `X-Twilio-Email-Event-Webhook-Timestamp`; its verification key is shown as the
base64 of the DER SubjectPublicKeyInfo (what `public_key_text` returns). `verify` runs on the raw
bytes before anything parses them, and refuses stale timestamps (a replay window).
"""

from __future__ import annotations

import base64
import binascii
import time
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from lojal.errors import WebhookConfigError, WebhookSignatureError

SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"
DEFAULT_MAX_AGE_SECONDS = 300
DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024


def new_private_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def public_key_text(key: ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey) -> str:
    """The verification key the way SendGrid's settings page shows it (base64 DER, no PEM armour)."""
    public = key.public_key() if isinstance(key, ec.EllipticCurvePrivateKey) else key
    der = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode("ascii")


def load_public_key(text: str) -> ec.EllipticCurvePublicKey:
    """Accept SendGrid's base64 DER form or a PEM block; anything else is a configuration error."""
    text = text.strip()
    try:
        if text.startswith("-----BEGIN"):
            key = serialization.load_pem_public_key(text.encode("ascii"))
        else:
            key = serialization.load_der_public_key(base64.b64decode("".join(text.split()), validate=True))
    except (ValueError, binascii.Error, TypeError) as exc:
        raise WebhookConfigError(
            f"the Event Webhook verification key is not a valid public key ({type(exc).__name__}); copy it "
            "from SendGrid (Settings > Mail Settings > Event Webhook > Signature verification) into "
            "LOJAL_SENDGRID_WEBHOOK_PUBLIC_KEY or sender.yaml delivery.sendgrid.webhook_public_key") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise WebhookConfigError("the Event Webhook verification key must be an ECDSA P-256 public key")
    return key


def sign(key: ec.EllipticCurvePrivateKey, timestamp: str, body: bytes) -> str:
    """What SendGrid does (and the local SendGrid does): base64 DER signature of timestamp + body."""
    return base64.b64encode(key.sign(timestamp.encode("ascii") + body, ec.ECDSA(hashes.SHA256()))).decode("ascii")


def signed_headers(key: ec.EllipticCurvePrivateKey, body: bytes, now: float | None = None) -> dict[str, str]:
    timestamp = str(int(time.time() if now is None else now))
    return {"Content-Type": "application/json", SIGNATURE_HEADER: sign(key, timestamp, body),
            TIMESTAMP_HEADER: timestamp}


@dataclass(frozen=True)
class Verifier:
    """Checks one delivery of the webhook: signature present, well-formed, valid, and fresh."""

    public_key: ec.EllipticCurvePublicKey
    max_age_seconds: int = DEFAULT_MAX_AGE_SECONDS

    def verify(self, body: bytes, signature: str | None, timestamp: str | None, now: float | None = None) -> None:
        """Raise WebhookSignatureError (with `status` 401 or 403) unless the post is authentic and fresh."""
        if not signature or not timestamp:
            raise WebhookSignatureError("missing signature or timestamp header", status=401)
        if not timestamp.isdigit() or len(timestamp) > 12:
            raise WebhookSignatureError("malformed timestamp header", status=401)
        try:
            raw_signature = base64.b64decode(signature, validate=True)
        except (binascii.Error, ValueError):
            raise WebhookSignatureError("malformed signature header", status=401) from None
        try:
            self.public_key.verify(raw_signature, timestamp.encode("ascii") + body, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            raise WebhookSignatureError("signature does not match the body and timestamp", status=403) from None
        age = (time.time() if now is None else now) - int(timestamp)
        if abs(age) > self.max_age_seconds:
            raise WebhookSignatureError(
                f"timestamp is {int(age)} s away from now, outside the {self.max_age_seconds} s replay window",
                status=403)
