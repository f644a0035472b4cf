"""The small interface every delivery backend implements."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from lojal.delivery.message import OutgoingMessage


@dataclass(frozen=True)
class DeliveryResult:
    message_id: str
    delivered: bool
    provider_id: str | None = None  # e.g. SendGrid's X-Message-Id, or the outbox file
    error: str | None = None
    retryable: bool = False
    duplicate: bool = False  # the backend had this message already: delivered earlier, not again


class DeliveryBackend(Protocol):
    name: str

    def send_batch(self, messages: Sequence[OutgoingMessage]) -> list[DeliveryResult]:
        """Deliver messages; a result per message. Raise DeliveryError only when the whole
        backend is unusable (unreachable, bad credentials): the run stops and can be resumed."""
        ...

    def finish(self) -> None:
        """Called once after the run's last batch (write indexes, close connections)."""
        ...
