"""Fault injection for resilience tests and drills: a backend that dies after N deliveries."""

from __future__ import annotations

from collections.abc import Sequence

from lojal.delivery.base import DeliveryBackend, DeliveryResult
from lojal.delivery.message import OutgoingMessage
from lojal.errors import DeliveryError


class FailAfter:
    """Delivers through `inner` until `limit` messages went out in this process, then raises
    DeliveryError mid-batch, the way a provider outage or a killed worker would."""

    def __init__(self, inner: DeliveryBackend, limit: int):
        self.inner = inner
        self.limit = limit
        self.delivered = 0
        self.name = f"{inner.name}+fail-after-{limit}"
        self.concurrency = inner.concurrency

    def send_batch(self, messages: Sequence[OutgoingMessage]) -> list[DeliveryResult]:
        allowed = max(0, self.limit - self.delivered)
        results = self.inner.send_batch(messages[:allowed])
        self.delivered += len(results)
        if len(messages) > allowed:
            raise DeliveryError(f"injected fault: delivery stopped after {self.limit} messages", retryable=True)
        return results

    def finish(self) -> None:
        self.inner.finish()
