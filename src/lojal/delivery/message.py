"""The message every backend delivers, with its headers checked once, at construction."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
import base64
from datetime import datetime, timezone
from email.header import Header
from email.utils import format_datetime, formataddr

from lojal.errors import HeaderInjectionError

_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]")
_EMAIL = re.compile(r"^[^@\s<>\"(),;:\\\[\]]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+$")


def check_header(name: str, value: str) -> str:
    """Reject CR, LF and other control characters: they would let data add or split headers."""
    if _CONTROL.search(value):
        raise HeaderInjectionError(f"header {name} contains a line break or control character: {value[:60]!r}")
    return value


def check_address(name: str, value: str) -> str:
    check_header(name, value)
    if not _EMAIL.match(value):
        raise HeaderInjectionError(f"header {name} is not a valid e-mail address: {value[:60]!r}")
    return value


@dataclass(frozen=True)
class OutgoingMessage:
    message_id: str
    campaign_id: str
    customer_id: int
    to_email: str
    to_name: str
    from_email: str
    from_name: str
    subject: str
    html: str
    text: str
    reply_to: str | None = None
    preheader: str = ""
    categories: tuple[str, ...] = ()
    custom_args: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_address("To", self.to_email)
        check_address("From", self.from_email)
        if self.reply_to:
            check_address("Reply-To", self.reply_to)
        for name, value in (("To name", self.to_name), ("From name", self.from_name), ("Subject", self.subject)):
            check_header(name, value)
        if not self.subject.strip():
            raise HeaderInjectionError("Subject is empty")
        for name, value in self.headers.items():
            check_header(name, name)
            check_header(name, value)

    def to_eml(self, sent_at: datetime | None = None) -> str:
        """The RFC 5322 message as it would leave an SMTP relay: multipart/alternative, UTF-8
        parts in base64, non-ASCII headers RFC 2047-encoded. Built directly: the stdlib's
        EmailMessage generator costs ~10 ms per 40 KB message, this well under 1 ms."""
        domain = self.from_email.split("@", 1)[1]
        boundary = f"=_lojal_{self.message_id}"
        headers = [
            ("Message-ID", f"<{self.message_id}@{domain}>"),
            ("Date", format_datetime(sent_at or datetime.now(timezone.utc))),
            ("From", _address(self.from_name, self.from_email)),
            ("To", _address(self.to_name, self.to_email)),
            *((("Reply-To", self.reply_to),) if self.reply_to else ()),
            ("Subject", _encoded("Subject", self.subject)),
            *((name, _encoded(name, value)) for name, value in self.headers.items()),
            ("X-Lojal-Campaign", self.campaign_id),
            ("X-Lojal-Message-Id", self.message_id),
            ("MIME-Version", "1.0"),
            ("Content-Type", f'multipart/alternative; boundary="{boundary}"'),
        ]
        lines = [f"{name}: {value}" for name, value in headers] + [""]
        for subtype, body in (("plain", self.text), ("html", self.html)):
            lines += [f"--{boundary}", f'Content-Type: text/{subtype}; charset="utf-8"',
                      "Content-Transfer-Encoding: base64", "",
                      base64.encodebytes(body.encode("utf-8")).decode("ascii").rstrip("\n")]
        lines += [f"--{boundary}--", ""]
        return "\r\n".join(lines)


def _encoded(name: str, value: str) -> str:
    return value if value.isascii() else Header(value, "utf-8", header_name=name).encode(linesep="\r\n")


def _address(name: str, email: str) -> str:
    return formataddr((name, email), charset="utf-8")
