"""Occasion keys: what a campaign's e-mail is about, per customer (`order:52311`, `lapse:2025-09-02`,
`tier:Gold`, `birthday:2026`, `date:2026-11-24`, `once`). The send ledger keeps one row per (campaign,
customer, occasion), so each occasion is mailed at most once, ever.

Who gets which campaign is decided by `lojal.decisions.decide` (docs/planning.md).
"""

from __future__ import annotations

from datetime import date

import pandas as pd


def occasion_keys(kind: str, features: pd.DataFrame, run_date: date) -> pd.Series:
    """The occasion key per customer (NA where the occasion does not exist)."""
    index = features.index
    if kind == "last_order":
        ids = features["last_order_id"]
        return ("order:" + ids.astype("Int64").astype(str)).where(ids.notna())
    if kind == "lapse":
        last = pd.to_datetime(features["last_order_at"])
        return ("lapse:" + last.dt.strftime("%Y-%m-%d")).where(last.notna())
    if kind == "tier":
        return ("tier:" + features["tier"].astype(str)).where(features["tier"].notna())
    if kind == "birthday":
        return pd.Series(f"birthday:{run_date.year}", index=index)
    if kind == "run_date":
        return pd.Series(f"date:{run_date.isoformat()}", index=index)
    if kind == "once":
        return pd.Series("once", index=index)
    raise ValueError(f"unknown occasion kind {kind!r}")
