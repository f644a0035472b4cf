"""Benchmark: the pure planner (`lojal.decisions.decide`) at 1,000,000 customers with the shipped
campaigns (caps, quiet hours, local send times, holdouts, arms), against the naive way: a
per-customer Python loop over the campaigns making the same decisions, timed on a sample and
extrapolated (labelled so). The naive loop's decisions are compared with the planner's for the
sampled customers (they must agree exactly), so the two are doing the same work.

    .venv/bin/python bench/planning.py [--customers 1000000] [--history 3000000] [--sample 5000]

Frames are generated with numpy as `load_shop_data` / `compute_features` / `evaluate_segments`
would return them; segment membership is drawn at realistic rates per shipped segment.
"""

from __future__ import annotations

import argparse
import os
import re
import time
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from lojal import decisions as d
from lojal.config import load_config
from lojal.paths import Paths
from lojal.store.shopdata import ShopData
from lojal.timezones import check_time_zone, local_send_time, parse_clock

RUN_DATE = date(2026, 11, 24)
NOW = pd.Timestamp("2026-11-24 01:30")   # planning moment, UTC
PROJECT = Path(__file__).resolve().parents[1]
SECRET = d.ShopSecret(b"benchmark secret, not a real one")
ZONES = ["Europe/Oslo", "Europe/Stockholm", "Europe/Copenhagen", "Europe/London", "America/New_York", "", "Bad/Zone"]
ZONE_WEIGHTS = [0.5, 0.2, 0.15, 0.05, 0.03, 0.06, 0.01]
SEGMENT_RATES = {"post_purchase": 0.01, "first_order": 0.002, "replenishment_due": 0.02, "tier_upgraded": 0.002,
                 "survey_due": 0.01, "birthday_today": 0.003, "at_risk_vip": 0.02, "lapsed_90_180": 0.1,
                 "lost_365": 0.15}


def synthetic(customers: int, history_rows: int, seed: int = 3):
    rng = np.random.default_rng(seed)
    ids = np.arange(1, customers + 1, dtype=np.int64)
    emails = pd.Series(ids).astype(str) + "@example.com"
    broken = rng.uniform(size=customers) < 0.002
    suppressed = frozenset(rng.choice(emails[~broken].to_numpy(), customers // 100, replace=False))
    emails[broken] = "broken-address"
    frame = pd.DataFrame({
        "email": emails.to_numpy(), "first_name": "Kari", "locale": "nb", "country": "NO",
        "time_zone": rng.choice(ZONES, customers, p=ZONE_WEIGHTS), "birthday": pd.NaT,
        "created_at": pd.Timestamp("2024-01-01"), "consent_email": rng.uniform(size=customers) < 0.85,
        "consent_at": pd.Timestamp("2024-01-01"), "consent_source": "checkout"},
        index=pd.Index(ids, name="customer_id"))
    empty = pd.DataFrame()
    data = ShopData(pd.Timestamp(RUN_DATE), frame, empty, empty, empty, suppressed, "Europe/Oslo")
    last_at = pd.Timestamp(RUN_DATE) - pd.to_timedelta(rng.integers(1, 800, customers), unit="D")
    has_order = rng.uniform(size=customers) < 0.9
    tiers = np.array(["Bronze", "Silver", "Gold"])
    rank = rng.choice(3, customers, p=[0.7, 0.2, 0.1])
    features = pd.DataFrame({
        "last_order_id": pd.array(np.where(has_order, ids * 10, 0), dtype="Int64"),
        "last_order_at": pd.Series(last_at).where(has_order).to_numpy(dtype="datetime64[ns]"),
        "tier": tiers[rank], "tier_rank": rank}, index=frame.index)
    features.loc[~has_order, "last_order_id"] = pd.NA
    membership = pd.DataFrame({name: rng.uniform(size=customers) < rate for name, rate in SEGMENT_RATES.items()},
                              index=frame.index)
    campaigns = [c.id for c in load_config(Paths.resolve(PROJECT)).campaigns.campaigns]
    who = rng.integers(1, customers + 1, history_rows)
    accepted = NOW - pd.to_timedelta(rng.uniform(0, 60 * 24 * 3600, history_rows), unit="s")
    history = pd.DataFrame({
        "campaign_id": rng.choice(campaigns, history_rows), "customer_id": who,
        "occasion_key": "order:" + pd.Series(who * 10).astype(str),
        "state": rng.choice(["sent", "failed", "held_out"], history_rows, p=[0.85, 0.05, 0.1]),
        "accepted_at": accepted, "run_date": accepted.floor("D").date})
    history.loc[history["state"] != "sent", "accepted_at"] = pd.NaT
    return data, features, membership, history


def naive_index(config, history) -> tuple[set, dict]:
    """The naive way's setup, over the whole ledger history (timed on its own, not extrapolated):
    received (campaign, customer, occasion) as a set, accepted times per customer as lists."""
    exempt = {c.id for c in config.campaigns.campaigns if c.exempt_from_caps}
    received: set[tuple[str, int, str]] = set()
    accepted: dict[int, list[pd.Timestamp]] = {}
    for row in history.itertuples(index=False):
        if row.run_date == RUN_DATE:
            continue
        if row.state in d.RECEIVED_STATES or pd.notna(row.accepted_at):
            received.add((row.campaign_id, row.customer_id, row.occasion_key))
        if pd.notna(row.accepted_at) and row.campaign_id not in exempt:
            accepted.setdefault(row.customer_id, []).append(row.accepted_at)
    return received, accepted


def _occasion(kind: str, feats: dict) -> str | None:
    if kind == "last_order":
        return None if pd.isna(feats["last_order_id"]) else f"order:{int(feats['last_order_id'])}"
    if kind == "lapse":
        return None if pd.isna(feats["last_order_at"]) else f"lapse:{feats['last_order_at']:%Y-%m-%d}"
    if kind == "tier":
        return f"tier:{feats['tier']}"
    return {"birthday": f"birthday:{RUN_DATE.year}", "run_date": f"date:{RUN_DATE}", "once": "once"}[kind]


def naive(config, data, features, membership, received, accepted, sample_ids) -> dict:
    """The same decisions, one customer at a time: plain Python over dict rows, each customer's
    local send time computed for them, holdout and arm hashed per customer."""
    campaigns = config.campaigns
    pattern = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
    customers = data.customers.loc[sample_ids, ["email", "consent_email", "time_zone"]].to_dict("index")
    feats_by_id = features.loc[sample_ids].to_dict("index")
    members = membership.loc[sample_ids].to_dict("index")
    out = {}
    for cid in (int(c) for c in sample_ids):
        customer, feats = customers[cid], feats_by_id[cid]
        email = str(customer["email"]).strip().lower()
        gate = (d.NO_CONSENT if not customer["consent_email"] else d.SUPPRESSED if email in data.suppressed_emails
                else d.INVALID_EMAIL if not pattern.fullmatch(email) else None)
        zone = str(customer["time_zone"]).strip()
        zone = zone if zone and check_time_zone(zone) is None else config.brand.timezone
        taken, tonight = 0, []
        for campaign in campaigns.enabled:
            if not members[cid][campaign.segment]:
                continue
            key = _occasion(campaign.occasion, feats)
            at = parse_clock(campaign.send_time.at) if campaign.send_time and campaign.send_time.at else None
            quiet = campaign.quiet_hours(campaigns.quiet_hours)
            send_at = local_send_time(NOW, zone, at, quiet.span() if quiet else None)
            window = campaign.send_time.window_hours if campaign.send_time else 24
            reason = gate
            if reason is None and key is None:
                reason = d.NO_OCCASION
            if reason is None and (campaign.id, cid, key) in received:
                reason = d.ALREADY_RECEIVED
            if reason is None and send_at - NOW > pd.Timedelta(hours=window):
                reason = d.PAST_SEND_WINDOW
            if reason is None and not campaign.exempt_from_caps:
                for cap in campaigns.frequency_caps:
                    width = pd.Timedelta(hours=cap.hours)
                    earlier = sum(abs(t - send_at) < width for t in accepted.get(cid, []))
                    if earlier >= cap.max:
                        reason = d.CAPPED
                        break
                    if earlier + sum(abs(t - send_at) < width for t in tonight) >= cap.max:
                        reason = d.LOWER_PRIORITY
                        break
            if reason is None and taken >= campaigns.max_emails_per_customer_per_run:
                reason = d.LOWER_PRIORITY
            if reason is None and d.held_out(campaign, np.array([cid]), SECRET)[0]:
                reason = d.HELD_OUT
            variant = None
            if reason is None:
                variant = d.arm_names(campaign, np.array([cid]), SECRET)[0]
                taken += 1
                if not campaign.exempt_from_caps:
                    tonight.append(send_at)
            out[(cid, campaign.id)] = (reason, variant)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--history", type=int, default=3_000_000, help="ledger rows (last 60 days)")
    parser.add_argument("--sample", type=int, default=5000, help="customers for the naive loop")
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()}")
    config = load_config(Paths.resolve(PROJECT))
    t0 = time.perf_counter()
    data, features, membership, history = synthetic(args.customers, args.history)
    print(f"synthetic shop: {args.customers:,} customers, {len(history):,} ledger rows "
          f"({time.perf_counter() - t0:.1f} s to generate)")

    times = []
    for _ in range(2):
        t0 = time.perf_counter()
        plan = d.decide(config.campaigns, data, features, membership, history, now=NOW,
                        shop_timezone=config.brand.timezone, secret=SECRET, run_date=RUN_DATE)
        times.append(time.perf_counter() - t0)
    vectorized = min(times)
    print(f"decide(): {len(plan):,} decisions in {vectorized:.2f} s (best of {times[0]:.2f}, {times[1]:.2f})")
    print(d.funnel(plan).to_string())

    sample = np.random.default_rng(5).choice(data.customers.index.to_numpy(), args.sample, replace=False)
    t0 = time.perf_counter()
    received, accepted = naive_index(config, history)
    setup = time.perf_counter() - t0
    t0 = time.perf_counter()
    slow = naive(config, data, features, membership, received, accepted, sample)
    loop = time.perf_counter() - t0
    per_customer = loop / args.sample
    extrapolated = setup + per_customer * args.customers
    print(f"naive way: index the {len(history):,} ledger rows into dicts {setup:.1f} s (measured); per-customer loop "
          f"{args.sample:,} customers in {loop:.2f} s = {per_customer * 1e3:.3f} ms/customer")
    print(f"naive way at {args.customers:,} customers, EXTRAPOLATED from the sample: {setup:.0f} s + "
          f"{per_customer * args.customers:,.0f} s = {extrapolated:,.0f} s")
    print(f"ratio (naive extrapolated / decide): {extrapolated / vectorized:,.0f}x")

    mine = plan[plan["customer_id"].isin(sample)]
    agree = sum(slow[(int(c), k)] == (None if pd.isna(r) else r, None if v is None or pd.isna(v) else v)
                for c, k, r, v in zip(mine["customer_id"], mine["campaign"], mine["reason"], mine["variant"]))
    print(f"naive and decide() agree on {agree:,} of {len(mine):,} sampled decisions ({len(slow):,} naive)")
    if agree != len(mine) or len(slow) != len(mine):
        raise SystemExit("the naive loop and decide() disagree: fix before trusting the figures")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
