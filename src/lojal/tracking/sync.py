"""`lojal suppressions sync`: bring SendGrid's suppression lists into Lojal's (one normalization,
lojal.store.suppressions via lojal.suppressions), e.g. a shop's opt-outs from before Lojal.

Read through the v3 API with the project's API key, 500 per page:
bounces (`bounce`), blocks (`block`), spam reports (`spam_report`), invalid e-mails
(`invalid_email`), global unsubscribes (`unsubscribe`) and every unsubscribe group's members
(`group_unsubscribe` with the group). An address already suppressed keeps its first reason.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone

import httpx
from sqlalchemy import Engine

from lojal.errors import DeliveryAuthError, DeliveryError
from lojal.suppressions import add

LISTS = {"bounces": "bounce", "blocks": "block", "spam_reports": "spam_report",
         "invalid_emails": "invalid_email", "unsubscribes": "unsubscribe"}
PAGE = 500


@dataclass
class SyncResult:
    read: dict[str, int] = field(default_factory=dict)  # per list: entries read
    added: int = 0


def _get(client: httpx.Client, path: str, params: dict | None = None):
    answer = client.get(path, params=params)
    if answer.status_code in (401, 403):
        raise DeliveryAuthError(f"SendGrid refused the API key for {path} ({answer.status_code}); the key needs "
                                "the Suppressions (read) permission: check SENDGRID_API_KEY / sender.yaml")
    if answer.status_code != 200:
        raise DeliveryError(f"SendGrid answered {answer.status_code} for GET {path}: {answer.text[:200]}")
    return answer.json()


def fetch_list(client: httpx.Client, name: str) -> list[dict]:
    """Every entry of one suppression list, page by page."""
    rows: list[dict] = []
    while True:
        page = _get(client, f"/v3/suppression/{name}", {"limit": PAGE, "offset": len(rows)})
        rows.extend(page)
        if len(page) < PAGE:
            return rows


def _when(created) -> datetime | None:
    if isinstance(created, (int, float)) and created > 0:
        return datetime.fromtimestamp(created, timezone.utc).replace(tzinfo=None)
    return None


def sync(engine: Engine, client: httpx.Client, progress: Callable[[str, int], None] = lambda name, n: None) -> SyncResult:
    """Read every list through `client` (base_url and Authorization set) and suppress each address."""
    result = SyncResult()
    for name, reason in LISTS.items():
        rows = fetch_list(client, name)
        result.read[name] = len(rows)
        for row in rows:
            if row.get("email"):
                result.added += add(engine, row["email"], reason, f"sendgrid-{name}"[:64], _when(row.get("created")))
        progress(name, len(rows))
    for group in _get(client, "/v3/asm/groups"):
        members = _get(client, f"/v3/asm/groups/{int(group['id'])}/suppressions")
        result.read[f"group {group['id']}"] = len(members)
        for email in members:
            result.added += add(engine, email, "group_unsubscribe", "sendgrid-group", None, group=int(group["id"]))
        progress(f"group {group['id']}", len(members))
    return result


def client_for(base_url: str, api_key: str, timeout: float = 30) -> httpx.Client:
    return httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {api_key}", "Accept": "application/json"},
                        timeout=timeout)
