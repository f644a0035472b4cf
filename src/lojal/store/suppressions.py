"""Writing the suppression list: every entry stored under its mailbox key (lojal.addresses), so
that `ShopData.suppressed_emails` and the audience gate compare like with like."""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import Engine, select

from lojal.addresses import suppression_key
from lojal.store import schema


def suppress(engine: Engine, email: str, reason: str, source: str | None = None,
             at: datetime | None = None) -> str:
    """Add `email` to the suppression list (once per mailbox); return the key it is stored under."""
    key = suppression_key(email)
    when = at or datetime.now(timezone.utc).replace(tzinfo=None)
    with engine.begin() as conn:
        present = conn.execute(select(schema.suppressions.c.email).where(schema.suppressions.c.email == key)).first()
        if present is None:
            conn.execute(schema.suppressions.insert().values(email=key, reason=reason, source=source, created_at=when))
    return key
