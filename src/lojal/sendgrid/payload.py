"""The exact JSON body of SendGrid's v3 Mail Send request for one message.

Message-level `custom_args` is an object of strings (the published OpenAPI file says "string";
the live API requires an object), and every value must be a string.
"""

from __future__ import annotations

from datetime import datetime, timezone

from lojal.config import SendGridSettings, Tracking
from lojal.delivery.message import OutgoingMessage

MAX_CATEGORIES = 10


def _address(email: str, name: str | None) -> dict:
    return {"email": email, "name": name} if name else {"email": email}


def mail_send_body(message: OutgoingMessage, tracking: Tracking, settings: SendGridSettings | None = None,
                   send_at: datetime | None = None) -> dict:
    """`send_at` (or the message's own `send_at`, when the plan carries one; naive = UTC) schedules the
    message; `settings.sandbox_mode` asks SendGrid to validate it and deliver nothing."""
    body: dict = {
        "personalizations": [{"to": [_address(message.to_email, message.to_name)]}],
        "from": _address(message.from_email, message.from_name),
        "subject": message.subject,
        # text/plain must come first (SendGrid rejects other orders).
        "content": [
            {"type": "text/plain", "value": message.text},
            {"type": "text/html", "value": message.html},
        ],
        "categories": list(dict.fromkeys(message.categories))[:MAX_CATEGORIES],
        "custom_args": {k: str(v) for k, v in message.custom_args.items()},
        "tracking_settings": {
            "click_tracking": {"enable": tracking.click_tracking, "enable_text": False},
            "open_tracking": {"enable": tracking.open_tracking},
            # Our own UTM parameters are already on every link.
            "ganalytics": {"enable": False},
        },
    }
    if message.reply_to:
        body["reply_to"] = {"email": message.reply_to}
    if message.headers:
        body["headers"] = dict(message.headers)
    if settings and settings.asm_group_id is not None:
        body["asm"] = {"group_id": settings.asm_group_id}
    if settings and settings.ip_pool:
        body["ip_pool_name"] = settings.ip_pool
    send_at = send_at or getattr(message, "send_at", None)
    if send_at is not None:
        body["send_at"] = _unix(send_at)
    if settings and settings.sandbox_mode:
        body["mail_settings"] = {"sandbox_mode": {"enable": True}}
    return body


def _unix(moment: datetime) -> int:
    return int((moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).timestamp())
