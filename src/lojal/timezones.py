"""Time zones: one rule for what a valid zone is (config and imports), and local send times.

`check_time_zone` is the single validator (IANA names, a did-you-mean for typos). `send_times`
computes, per zone, when a message planned `now` goes out: at a fixed local wall-clock time
and/or outside quiet hours. Wall-clock times are built as local dates and times and then
localized, never by adding 24 hours, so they are right across both DST changes.
"""

from __future__ import annotations

import difflib
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import numpy as np
import pandas as pd


@lru_cache(maxsize=1)
def _zone_names() -> tuple[str, ...]:
    return tuple(sorted(available_timezones()))


@lru_cache(maxsize=4096)
def check_time_zone(name: str) -> str | None:
    """None when `name` is a known IANA zone, else an error message with a did-you-mean."""
    try:
        ZoneInfo(name)
        return None
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        pass
    lowered = {z.lower(): z for z in _zone_names()}
    if name.lower() in lowered:  # ZoneInfo is case-sensitive on Linux
        return f"unknown time zone {name!r}; did you mean '{lowered[name.lower()]}'?"
    close = difflib.get_close_matches(name, _zone_names(), n=1, cutoff=0.6)
    hint = f"did you mean '{close[0]}'?" if close else "use an IANA name such as Europe/Oslo"
    return f"unknown time zone {name!r}; {hint}"


def customer_zones(zones: pd.Series, shop_zone: str) -> pd.Series:
    """Each customer's zone; the shop's where the value is empty or not a known zone."""
    codes, uniques = pd.factorize(zones.to_numpy(dtype=object), use_na_sentinel=True)
    names = [str(u).strip() for u in uniques]
    valid = np.array([n if n and check_time_zone(n) is None else shop_zone for n in names] + [shop_zone], dtype=object)
    return pd.Series(valid[codes], index=zones.index, dtype=object)  # code -1 (missing) -> the shop's


def parse_clock(value: str) -> time:
    hours, minutes = value.split(":")
    return time(int(hours), int(minutes))


def _localize(day: date, at: time, zone: ZoneInfo) -> pd.Timestamp:
    """The instant the wall clock in `zone` shows `at` on `day`; a time skipped by the spring
    change moves forward to when the clock resumes, a repeated autumn time takes its first moment."""
    naive = pd.Timestamp(datetime.combine(day, at))
    return naive.tz_localize(zone, nonexistent="shift_forward", ambiguous=True)


def in_quiet_hours(moment: time, start: time, end: time) -> bool:
    """Quiet hours are [start, end) on the wall clock and may wrap past midnight (21:00-08:00)."""
    if start < end:
        return start <= moment < end
    return moment >= start or moment < end


def local_send_time(now_utc: pd.Timestamp, zone_name: str, at: time | None,
                    quiet: tuple[time, time] | None) -> pd.Timestamp:
    """When a message planned at `now_utc` goes out for someone in `zone_name` (naive UTC).

    With `at`, the next time the local clock shows `at` (now or later); without it, now. Then,
    when that falls in quiet hours, the next moment the quiet hours end."""
    zone = ZoneInfo(zone_name)
    local_now = now_utc.tz_localize("UTC").tz_convert(zone)
    target = local_now
    if at is not None:
        target = _localize(local_now.date(), at, zone)
        if target < local_now:
            target = _localize(local_now.date() + timedelta(days=1), at, zone)
    if quiet is not None and in_quiet_hours(target.time(), *quiet):
        start, end = quiet
        day = target.date() if target.time() < end else target.date() + timedelta(days=1)
        target = _localize(day, end, zone)
    return target.tz_convert("UTC").tz_localize(None)


def send_times(now_utc: pd.Timestamp, zones: list[str], at: time | None,
               quiet: tuple[time, time] | None) -> dict[str, pd.Timestamp]:
    """`local_send_time` for each distinct zone (one computation per zone, not per customer)."""
    return {zone: local_send_time(now_utc, zone, at, quiet) for zone in zones}
