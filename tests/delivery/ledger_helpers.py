"""Helpers for the ledger tests: rows planned through the ledger, one row read back."""

from __future__ import annotations

from datetime import date

import pandas as pd

from lojal import ledger

NIGHT = date(2026, 11, 24)


def planned(engine, campaign_id: str, customers, night: date = NIGHT) -> list[str]:
    recipients = pd.DataFrame({"customer_id": list(customers), "occasion_key": [f"order:{c}" for c in customers]})
    return ledger.plan(engine, campaign_id, night, recipients)["message_id"].tolist()


def row(engine, message_id: str) -> dict:
    return ledger.states(engine, [message_id]).iloc[0].to_dict()
