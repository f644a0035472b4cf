"""The embedded delivery backend: each message as `.eml`, its SendGrid request body as `.json`
and its HTML as `.html`, under `<state>/outbox/<run date>/<campaign>/`, plus an `index.html`.

The ledger, not these files, decides what is sent. The files are the outbox's own record, as
SendGrid's events are SendGrid's: reconciliation settles rows a crash left `sending` from them
(`.eml` present: sent; absent: sent again). A message handed over twice all the same is not
written again but answered `duplicate`.
`deliveries.jsonl` logs each first delivery, one line per message.
"""

from __future__ import annotations

import html
import json
import os
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

from lojal.config import SendGridSettings, Tracking
from lojal.delivery.base import SENT, DeliveryResult
from lojal.delivery.message import OutgoingMessage
from lojal.sendgrid.payload import mail_send_body

LOG_NAME = "deliveries.jsonl"


class OutboxBackend:
    name = "outbox"
    concurrency = 100  # files are written one after another; the window only bounds ledger commits

    def __init__(self, root: Path, tracking: Tracking, sendgrid: SendGridSettings | None = None):
        self.root = root
        self.tracking = tracking
        self.sendgrid = sendgrid
        root.mkdir(parents=True, exist_ok=True)

    def send_batch(self, messages: Sequence[OutgoingMessage]) -> list[DeliveryResult]:
        results = []
        with open(self.root / LOG_NAME, "a", encoding="utf-8") as log:
            for message in messages:
                results.append(self._deliver(message, log))
        return results

    def _deliver(self, message: OutgoingMessage, log) -> DeliveryResult:
        folder = self.root / message.campaign_id
        eml = folder / f"{message.message_id}.eml"
        if eml.exists():
            return DeliveryResult(message.message_id, SENT, self._relative(eml), duplicate=True,
                                  accepted_at=_mtime_utc(eml))
        folder.mkdir(parents=True, exist_ok=True)
        now = datetime.now(timezone.utc)
        body = mail_send_body(message, self.tracking, self.sendgrid)
        _write_atomic(folder / f"{message.message_id}.json", json.dumps(body, ensure_ascii=False, indent=2))
        _write_atomic(folder / f"{message.message_id}.html", message.html)
        # The .eml goes last: its presence means the message was delivered.
        _write_atomic(eml, message.to_eml(now))
        log.write(json.dumps({"message_id": message.message_id, "campaign": message.campaign_id,
                              "customer_id": message.customer_id, "at": now.isoformat()}) + "\n")
        log.flush()
        return DeliveryResult(message.message_id, SENT, self._relative(eml), accepted_at=now.replace(tzinfo=None))

    def _relative(self, eml: Path) -> str:
        """The provider id of an outbox message: `<date>/<campaign>/<message id>.eml` under the outbox."""
        return eml.relative_to(self.root.parent).as_posix()

    def finish(self) -> None:
        write_index(self.root)


def _mtime_utc(path: Path) -> datetime:
    return datetime.fromtimestamp(path.stat().st_mtime, timezone.utc).replace(tzinfo=None)


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_index(root: Path) -> Path:
    """`index.html` linking every message in the outbox folder, grouped by campaign."""
    sections = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        rows = []
        for body_file in sorted(folder.glob("*.json")):
            body = json.loads(body_file.read_text(encoding="utf-8"))
            to = body["personalizations"][0]["to"][0]
            stem = body_file.stem
            rows.append(
                f"<tr><td>{html.escape(to.get('name', ''))} &lt;{html.escape(to['email'])}&gt;</td>"
                f"<td><a href=\"{folder.name}/{stem}.html\">{html.escape(body['subject'])}</a></td>"
                f"<td><a href=\"{folder.name}/{stem}.eml\">.eml</a> · <a href=\"{folder.name}/{stem}.json\">SendGrid JSON</a></td></tr>")
        sections.append(f"<h2>{html.escape(folder.name)} ({len(rows)})</h2>"
                        f"<table><tr><th>To</th><th>Subject</th><th>Files</th></tr>{''.join(rows)}</table>")
    page = ("<!doctype html><meta charset=\"utf-8\"><title>Lojal outbox " + html.escape(root.name) + "</title>"
            "<style>body{font-family:system-ui,sans-serif;margin:2rem}table{border-collapse:collapse}"
            "td,th{padding:.25rem .75rem;border-bottom:1px solid #ddd;text-align:left}</style>"
            f"<h1>Outbox for {html.escape(root.name)}</h1>" + "".join(sections))
    index = root / "index.html"
    _write_atomic(index, page)
    return index
