"""Delivery backends behind one small interface, chosen in one place: `backend_for`."""

from __future__ import annotations

from datetime import date

from lojal.config import ProjectConfig
from lojal.delivery.base import DeliveryBackend, DeliveryResult
from lojal.delivery.message import OutgoingMessage
from lojal.delivery.outbox import OutboxBackend
from lojal.paths import Paths

__all__ = ["DeliveryBackend", "DeliveryResult", "OutgoingMessage", "OutboxBackend", "backend_for", "BACKENDS"]

BACKENDS = ("outbox", "sendgrid")


def backend_for(config: ProjectConfig, paths: Paths, run_date: date, override: str | None = None) -> DeliveryBackend:
    """The backend `config/sender.yaml` names (`delivery.backend`), or `override` for one run
    (`lojal run --delivery`)."""
    delivery = config.sender.delivery
    name = override or delivery.backend
    if name == "outbox":
        return OutboxBackend(paths.outbox_dir(run_date), config.tracking, delivery.sendgrid)
    if name == "sendgrid":
        from lojal.sendgrid.backend import SendGridBackend

        return SendGridBackend(delivery.sendgrid, config.tracking)
    raise ValueError(f"unknown delivery backend {name!r}; use one of {', '.join(BACKENDS)}")
