"""Delivery backends behind one small interface, chosen in one place: `backend_for`."""

from __future__ import annotations

from datetime import date

from lojal.config import ProjectConfig
from lojal.delivery.base import DeliveryBackend, DeliveryResult
from lojal.delivery.message import OutgoingMessage
from lojal.delivery.outbox import OutboxBackend
from lojal.paths import Paths

__all__ = ["DeliveryBackend", "DeliveryResult", "OutgoingMessage", "OutboxBackend", "backend_for"]


def backend_for(config: ProjectConfig, paths: Paths, run_date: date) -> DeliveryBackend:
    delivery = config.sender.delivery
    if delivery.backend == "outbox":
        return OutboxBackend(paths.outbox_dir(run_date), config.tracking, delivery.sendgrid)
    raise ValueError(f"unknown delivery backend {delivery.backend!r}")
