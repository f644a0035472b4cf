"""The shop's clock. The store keeps naive UTC; the stages work in the shop's wall-clock time,
so that "yesterday", "14 days ago" and birthdays are the shop's calendar days."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pandas as pd


def utc_to_local(times: pd.Series, zone: str) -> pd.Series:
    """Naive UTC times as naive wall-clock times in `zone`."""
    times = pd.to_datetime(times).astype("datetime64[ns]")
    if zone == "UTC":
        return times
    return times.dt.tz_localize("UTC").dt.tz_convert(zone).dt.tz_localize(None).astype("datetime64[ns]")


def local_to_utc(times: pd.Series, zone: str) -> pd.Series:
    """Naive wall-clock times in `zone` as naive UTC. A time skipped by a DST jump moves forward
    to the first one that exists; a repeated hour is taken at its first occurrence."""
    times = pd.to_datetime(times).astype("datetime64[ns]")
    if zone == "UTC":
        return times
    aware = times.dt.tz_localize(zone, nonexistent="shift_forward", ambiguous=True)
    return aware.dt.tz_convert("UTC").dt.tz_localize(None).astype("datetime64[ns]")


def start_of_day_utc(day: pd.Timestamp, zone: str) -> datetime:
    """The UTC moment at which the shop's day `day` (a naive local midnight) begins."""
    return local_to_utc(pd.Series([day]), zone).iloc[0].to_pydatetime()


def shop_today(zone: str) -> date:
    """Today's date in the shop's time zone: the default run date."""
    return datetime.now(UTC).astimezone(ZoneInfo(zone)).date()
