"""`/unsubscribe/{token}` on the webhook app (`lojal webhook serve`).

- `POST` with body `List-Unsubscribe=One-Click` (RFC 8058, sent by Gmail/Yahoo from the
  List-Unsubscribe-Post header): suppresses the token's recipient, answers 200 text.
- `GET`: a page in the recipient's language (en/nb/sv/da, from the signed token) with one
  button that confirms (a GET never unsubscribes: link scanners and previews follow links).
  When that mailbox is already unsubscribed by this link, the page offers the undo instead.
- `POST` `action=unsubscribe` (the page's button): suppresses, shows "done" with an undo button.
- `POST` `action=undo`: lifts exactly the suppression this message's link made (never a bounce,
  complaint or another source's).

A malformed, altered, forged or foreign token is refused (400 / 403) before anything is read from
or written to the store. Tokens are checked with the shop's secret only (lojal.tracking.tokens).
"""

from __future__ import annotations

import html
import logging
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import parse_qs

import anyio
from sqlalchemy import Engine

from lojal import suppressions as supp
from lojal.errors import UnsubscribeTokenError
from lojal.tracking.tokens import Secrets, UnsubscribeRequest, verify_unsubscribe_token

PREFIX = "/unsubscribe/"
MAX_FORM_BYTES = 4096
log = logging.getLogger("lojal.unsubscribe")

TEXTS = {
    "en": {"title": "Unsubscribe", "ask": "Stop marketing e-mail from {shop} to {email}?", "confirm": "Unsubscribe",
           "done": "{email} will no longer get marketing e-mail from {shop}.", "undo": "Undo: keep getting e-mail",
           "undone": "Welcome back: {email} will get e-mail from {shop} again.", "invalid": "This link is not valid."},
    "nb": {"title": "Meld deg av", "ask": "Slutte å få markedsførings-e-post fra {shop} til {email}?",
           "confirm": "Meld meg av", "done": "{email} får ikke lenger markedsførings-e-post fra {shop}.",
           "undo": "Angre: fortsett å få e-post", "undone": "Velkommen tilbake: {email} får e-post fra {shop} igjen.",
           "invalid": "Denne lenken er ikke gyldig."},
    "sv": {"title": "Avregistrera", "ask": "Sluta få marknadsföringsmejl från {shop} till {email}?",
           "confirm": "Avregistrera mig", "done": "{email} får inte längre marknadsföringsmejl från {shop}.",
           "undo": "Ångra: fortsätt få mejl", "undone": "Välkommen tillbaka: {email} får mejl från {shop} igen.",
           "invalid": "Den här länken är inte giltig."},
    "da": {"title": "Afmeld", "ask": "Stop markedsførings-e-mails fra {shop} til {email}?",
           "confirm": "Afmeld mig", "done": "{email} får ikke længere markedsførings-e-mails fra {shop}.",
           "undo": "Fortryd: bliv ved med at få e-mails",
           "undone": "Velkommen tilbage: {email} får e-mails fra {shop} igen.", "invalid": "Dette link er ikke gyldigt."},
}


def texts(locale: str) -> dict[str, str]:
    return TEXTS.get((locale or "en")[:2].lower(), TEXTS["en"])


def page(locale: str, shop: str, body: str, button: tuple[str, str] | None = None, status_text: str = "") -> str:
    """A small self-contained HTML page; every piece of data in it is escaped."""
    t = texts(locale)
    form = ""
    if button:
        action, label = button
        form = (f'<form method="post"><input type="hidden" name="action" value="{html.escape(action)}">'
                f'<button type="submit">{html.escape(label)}</button></form>')
    return (f'<!doctype html><html lang="{html.escape(locale[:2])}"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width,initial-scale=1"><meta name="robots" content="noindex">'
            f"<title>{html.escape(t['title'])} · {html.escape(shop)}</title>"
            "<style>body{font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem}"
            "button{font-size:1rem;padding:.6rem 1.2rem}</style></head>"
            f'<body><h1>{html.escape(shop)}</h1><p id="status" data-status="{html.escape(status_text)}">'
            f"{html.escape(body)}</p>{form}</body></html>")


@dataclass
class UnsubscribeEndpoint:
    engine: Engine
    secrets: Secrets
    shop_name: str
    report: Callable[[str], None] | None = None

    def verify(self, token: str) -> UnsubscribeRequest:
        return verify_unsubscribe_token(token, self.secrets)

    async def handle(self, scope, receive, send) -> None:
        token = scope["path"][len(PREFIX):]
        method = scope["method"]
        if method not in ("GET", "POST"):
            await _send(send, 405, "text/plain", "GET or POST only")
            return
        try:
            request = self.verify(token)
        except UnsubscribeTokenError as exc:
            log.warning("refused an unsubscribe request: %s", exc)  # the token itself is not logged
            status = 403 if "signature" in str(exc) else 400
            await _send(send, status, "text/html", page("en", self.shop_name, texts("en")["invalid"], None, "invalid"))
            return
        if method == "GET":
            await self._confirmation(send, request)
            return
        form = await _read_form(receive)
        if form is None:
            await _send(send, 413, "text/plain", "form too large")
            return
        await self._post(send, request, form)

    async def _confirmation(self, send, request: UnsubscribeRequest) -> None:
        t = texts(request.locale)
        fill = {"shop": self.shop_name, "email": request.email}
        done = await anyio.to_thread.run_sync(self._by_this_link, request)
        if done:
            body, button, status = t["done"].format(**fill), ("undo", t["undo"]), "unsubscribed"
        else:
            body, button, status = t["ask"].format(**fill), ("unsubscribe", t["confirm"]), "asking"
        await _send(send, 200, "text/html", page(request.locale, self.shop_name, body, button, status))

    def _by_this_link(self, request: UnsubscribeRequest) -> bool:
        rows = supp.list_suppressions_for(self.engine, request.email)
        return any(r["source"] == supp.LINK_SOURCE and r["event_id"] == f"link:{request.message_id}"[:100]
                   for r in rows)

    async def _post(self, send, request: UnsubscribeRequest, form: dict[str, str]) -> None:
        t = texts(request.locale)
        fill = {"shop": self.shop_name, "email": request.email}
        if form.get("List-Unsubscribe") == "One-Click":
            await anyio.to_thread.run_sync(supp.unsubscribe_by_link, self.engine, request.email, request.message_id)
            self._report(f"one-click unsubscribe (message {request.message_id})")
            await _send(send, 200, "text/plain", "unsubscribed")
            return
        action = form.get("action")
        if action == "unsubscribe":
            await anyio.to_thread.run_sync(supp.unsubscribe_by_link, self.engine, request.email, request.message_id)
            self._report(f"unsubscribe by the page (message {request.message_id})")
            await _send(send, 200, "text/html", page(request.locale, self.shop_name, t["done"].format(**fill),
                                                     ("undo", t["undo"]), "unsubscribed"))
        elif action == "undo":
            await anyio.to_thread.run_sync(supp.undo_link_unsubscribe, self.engine, request.email, request.message_id)
            self._report(f"unsubscribe undone (message {request.message_id})")
            await _send(send, 200, "text/html", page(request.locale, self.shop_name, t["undone"].format(**fill),
                                                     None, "resubscribed"))
        else:
            await _send(send, 400, "text/plain", "expected List-Unsubscribe=One-Click or action=unsubscribe|undo")

    def _report(self, line: str) -> None:
        if self.report:
            self.report(line)


async def _read_form(receive) -> dict[str, str] | None:
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return {}
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_FORM_BYTES:
            return None
        chunks.append(chunk)
        if not message.get("more_body"):
            break
    fields = parse_qs(b"".join(chunks).decode("utf-8", "replace"), keep_blank_values=True)
    return {k: v[0] for k, v in fields.items()}


async def _send(send, status: int, content_type: str, text: str) -> None:
    body = text.encode("utf-8")
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", f"{content_type}; charset=utf-8".encode()),
                            (b"content-length", str(len(body)).encode()), (b"cache-control", b"no-store"),
                            (b"x-content-type-options", b"nosniff")]})
    await send({"type": "http.response.body", "body": body})
