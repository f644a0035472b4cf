"""The small interface every delivery backend implements (the contract between the ledger and
the providers; see docs/delivery.md).

A backend makes exactly ONE attempt per message it is handed and says what became of it:

    sent      the provider accepted it (provider id, accepted_at)
    rejected  the provider refused it for good (4xx other than 401/403/429): never retried
    failed    it was not accepted and may be tried again (5xx, connection refused, rate-limit
              wait exhausted): the ledger retries it on a later attempt, up to a cap
    unknown   the request may have been accepted (timeout or dropped connection after the body
              was sent): never blindly resent; settled from the provider's events

The ledger commits every message of a window as `sending` before handing that window to
`send_batch`, and settles each message from its result afterwards.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from lojal.delivery.message import OutgoingMessage

SENT, REJECTED, FAILED, UNKNOWN = "sent", "rejected", "failed", "unknown"  # a DeliveryResult's outcome
OUTCOMES = (SENT, REJECTED, FAILED, UNKNOWN)


@dataclass(frozen=True)
class DeliveryResult:
    message_id: str
    outcome: str                          # sent | rejected | failed | unknown (see module docstring)
    provider_id: str | None = None        # SendGrid's X-Message-Id, or the outbox file
    error: str | None = None              # SendGrid's error text, or what went wrong
    accepted_at: datetime | None = None   # naive UTC, when the provider accepted (outcome sent)
    duplicate: bool = False               # the backend had this message already (outbox): not delivered again

    def __post_init__(self) -> None:
        if self.outcome not in OUTCOMES:
            raise ValueError(f"unknown delivery outcome {self.outcome!r}; use one of {', '.join(OUTCOMES)}")

    @property
    def delivered(self) -> bool:
        return self.outcome == SENT


class DeliveryBackend(Protocol):
    name: str
    concurrency: int  # at most this many requests in flight; the pipeline marks at most a small window
                      # of rows `sending` (committed) before calling send_batch with exactly that window

    def send_batch(self, messages: Sequence[OutgoingMessage]) -> list[DeliveryResult]:
        """Exactly ONE attempt per message (a 429 wait-and-retry of the same request is part of the
        attempt, as is a retry after a connection error that happened before the body was sent).
        Results in the order given. Raise lojal.errors.DeliveryAuthError (a DeliveryError) on
        401/403: the run stops at once with a message naming the setting to fix
        (SENDGRID_API_KEY / sender.yaml)."""
        ...

    def finish(self) -> None:
        """Called once after the run's last batch (write indexes, close connections)."""
        ...
