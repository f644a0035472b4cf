"""Loyalty tiers from 12-month spend, tonight and as of the previous run."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd

from lojal.config import Loyalty
from lojal.features.history import YEAR
from lojal.store.shopdata import ShopData, start_of


def tier_rank(spend: pd.Series, loyalty: Loyalty) -> pd.Series:
    """Index of the highest tier whose min_spend_12m the spend reaches (0 = the first tier)."""
    minimums = np.array([t.min_spend_12m for t in loyalty.tiers], dtype=float)
    ranks = np.searchsorted(minimums, spend.fillna(0.0).to_numpy(dtype=float), side="right") - 1
    return pd.Series(np.clip(ranks, 0, None), index=spend.index, dtype="int64")


def tier_names(ranks: pd.Series, loyalty: Loyalty) -> pd.Series:
    names = np.array([t.name for t in loyalty.tiers], dtype=object)
    return pd.Series(names[ranks.to_numpy()], index=ranks.index, dtype="str")


def spend_in_year_before(data: ShopData, end: pd.Timestamp) -> pd.Series:
    """Per customer: sum of order totals in [end - 365 days, end)."""
    placed = data.orders["placed_at"]
    window = data.orders[(placed >= end - YEAR) & (placed < end)]
    spend = window.groupby("customer_id")["total"].sum()
    return spend.reindex(data.customers.index, fill_value=0.0).astype(float)


def previous_tier_moment(as_of: pd.Timestamp, previous_run: date | None, loyalty: Loyalty) -> pd.Timestamp:
    """When previous_tier is measured: the start of the last completed run's date, at most
    `upgrade_catch_up_days` back, and the night before when there was no earlier run (or it was
    tonight's date itself, a re-run)."""
    latest = as_of - pd.Timedelta(days=1)
    if previous_run is None or start_of(previous_run) > latest:
        return latest
    return max(start_of(previous_run), as_of - pd.Timedelta(days=loyalty.upgrade_catch_up_days))


def loyalty_tiers(data: ShopData, loyalty: Loyalty, previous_run: date | None = None) -> pd.DataFrame:
    """tier / previous_tier (recomputed from orders as of the previous run) and their ranks."""
    now = tier_rank(spend_in_year_before(data, data.as_of), loyalty)
    moment = previous_tier_moment(data.as_of, previous_run, loyalty)
    before = tier_rank(spend_in_year_before(data, moment), loyalty)
    return pd.DataFrame({
        "tier": tier_names(now, loyalty),
        "previous_tier": tier_names(before, loyalty),
        "tier_rank": now,
        "previous_tier_rank": before,
        "tier_upgraded": now > before,
    }, index=data.customers.index)
