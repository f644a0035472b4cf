"""Benchmark: the tracking report's numbers (`lojal.tracking.report.gather`: funnel, attribution,
lift and A/B arms over the report's nights), the way Lojal computes them and the naive way, in the
same run on the same store, which must give the identical report.

    .venv/bin/python bench/report.py [--customers 1000000] [--sends 300000] [--store postgresql|sqlite] [--json]

The store: `--customers` customers with Poisson(5) orders over 200 days (1-4 lines each, prices to
the cent and to four decimals), `--sends` ledger rows over 30 nights in four campaigns (one with
arms a/b, 12% held out), and delivered/opened/clicked events for the mailed ones. The naive way is
the report before it was vectorized: every order line fetched as a row and summed per order in
Decimal, then for every send a loop over its customer's orders (kept here as the reference).
Each is timed on the same store once its data is in the database's cache (one warm-up read of
each first).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections import defaultdict
from datetime import date, datetime, time as clock, timedelta
from decimal import Decimal

import numpy as np
import pandas as pd
from sqlalchemy import create_engine, select, text

from lojal.store import connect, init_schema, schema
from lojal.store.write import bulk_insert
from lojal.tracking import report as lojal_report
from lojal.tracking.attribution import Order
from lojal.tracking.lift import Observation, compare_arms, lift

POSTGRES_URL = os.environ.get("LOJAL_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
NIGHT = date(2026, 11, 24)
NIGHTS = 30
CAMPAIGNS = ("win_back", "last_chance", "replenishment", "vip_care")


def build_store(url: str, customers: int, sends: int, seed: int = 7) -> dict[str, int]:
    """The synthetic store described in the module's docstring; returns its row counts."""
    rng = np.random.default_rng(seed)
    engine = connect(url)
    init_schema(engine)
    ids = np.arange(1, customers + 1)
    per_customer = rng.poisson(5, customers)
    order_customer = np.repeat(ids, per_customer)
    n_orders = len(order_customer)
    start = datetime.combine(NIGHT, clock()) - timedelta(days=200)
    placed = pd.Timestamp(start) + pd.to_timedelta(rng.integers(0, 206 * 86_400, n_orders), unit="s")
    order_ids = np.arange(1, n_orders + 1)
    line_counts = rng.integers(1, 5, n_orders)
    line_order = np.repeat(order_ids, line_counts)
    line_no = np.arange(len(line_order)) - np.repeat(np.cumsum(line_counts) - line_counts, line_counts) + 1
    prices = np.round(rng.uniform(10, 900, len(line_order)), 2)
    four = rng.random(len(line_order)) < 0.1
    prices[four] = np.round(rng.uniform(10, 900, four.sum()), 4)  # some prices to four decimals
    ledger_customers = rng.choice(ids, sends)
    nights = [NIGHT - timedelta(days=int(d)) for d in rng.integers(0, NIGHTS, sends)]
    held = rng.random(sends) < 0.12
    campaign = np.array(CAMPAIGNS, dtype=object)[rng.integers(0, len(CAMPAIGNS), sends)]
    variant = np.where(campaign == "win_back", np.where(rng.random(sends) < 0.5, "a", "b"), None)
    message_ids = [f"m{i}" for i in range(sends)]
    accepted = [datetime.combine(n, clock(8)) for n in nights]
    mailed = np.flatnonzero(~held)
    kinds = rng.choice(["delivered", "opened", "clicked"], len(mailed), p=[0.6, 0.3, 0.1])
    with engine.begin() as conn:
        bulk_insert(conn, schema.customers, pd.DataFrame({
            "customer_id": ids, "email": [f"c{i}@example.no" for i in ids], "first_name": "", "locale": "nb",
            "country": "NO", "time_zone": "Europe/Oslo", "created_at": datetime(2024, 1, 1), "consent_email": True}))
        bulk_insert(conn, schema.products, pd.DataFrame({"sku": ["P1"], "title": ["Pute"], "category": ["tekstil"],
                                                         "price": [199.9], "currency": ["NOK"], "in_stock": [True]}))
        bulk_insert(conn, schema.orders, pd.DataFrame({"order_id": order_ids, "customer_id": order_customer,
                                                       "placed_at": placed, "currency": "NOK"}))
        bulk_insert(conn, schema.order_lines, pd.DataFrame({"order_id": line_order, "line_no": line_no, "sku": "P1",
                                                            "quantity": rng.integers(1, 4, len(line_order)),
                                                            "unit_price": prices}))
        bulk_insert(conn, schema.send_ledger, pd.DataFrame({
            "campaign_id": campaign, "customer_id": ledger_customers, "occasion_key": [f"o{i}" for i in range(sends)],
            "run_date": nights, "message_id": message_ids, "state": np.where(held, "held_out", "sent"),
            "planned_at": accepted, "attempts": 1, "accepted_at": [None if h else a for h, a in zip(held, accepted)],
            "variant": variant}))
        bulk_insert(conn, schema.delivery_events, pd.DataFrame({
            "sg_event_id": [f"e{i}" for i in mailed], "event": kinds, "message_id": [message_ids[i] for i in mailed],
            "email": "c@example.no", "occurred_at": [accepted[i] + timedelta(hours=2) for i in mailed],
            "received_at": [accepted[i] for i in mailed], "machine_open": False, "payload": "{}"}))
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execute(text("ANALYZE"))
    engine.dispose()
    return {"customers": customers, "orders": n_orders, "order_lines": len(line_order), "sends": sends,
            "events": len(mailed)}


# --- the naive way: the report before it was vectorized ------------------------------------------

def naive_gather(engine, date_from: date, date_to: date, window_days: float = 5) -> lojal_report.Report:
    start = datetime.combine(date_from, clock())
    end = datetime.combine(date_to + timedelta(days=1), clock()) + timedelta(days=window_days)
    with engine.connect() as conn:
        sends = lojal_report._sends(conn, date_from, date_to)
        orders = _naive_orders(conn, start - timedelta(days=lojal_report.PRE_PERIOD_DAYS), end, date_from, date_to)
        events = lojal_report._events(conn, date_from, date_to)
    days, by_id = lojal_report._funnel(sends, events)
    lojal_report._credit(days, by_id, sends, events, [o for o in orders if start <= o.placed_at < end],
                         window_days, False)
    by_campaign, by_customer = defaultdict(list), defaultdict(list)
    for r in sends:
        by_campaign[r.campaign_id].append(r)
    for order in orders:
        by_customer[order.customer_id].append(order)
    campaigns = [lojal_report.CampaignReport(cid, dict(sorted(d.items())),
                                             *_naive_effects(by_campaign[cid], by_customer, window_days))
                 for cid, d in sorted(days.items())]
    return lojal_report.Report(date_from, date_to, "NOK", window_days, campaigns)


def _naive_orders(conn, since, until, date_from, date_to) -> list[Order]:
    o, lines, ledger = schema.orders, schema.order_lines, schema.send_ledger
    customers = select(ledger.c.customer_id).where(lojal_report._mailed_or_held_out(date_from, date_to))
    rows = conn.execute(select(o.c.order_id, o.c.customer_id, o.c.placed_at, o.c.lojal_message_id, lines.c.quantity,
                               lines.c.unit_price)
                        .join(lines, lines.c.order_id == o.c.order_id)
                        .where(o.c.placed_at >= since, o.c.placed_at < until, o.c.customer_id.in_(customers))).all()
    totals: dict[int, list] = {}
    for order_id, customer_id, placed_at, message_id, quantity, unit_price in rows:
        entry = totals.setdefault(order_id, [customer_id, placed_at, Decimal(0), message_id])
        entry[2] += lojal_report._money(unit_price) * int(quantity)
    return [Order(oid, cid, placed, revenue, mid) for oid, (cid, placed, revenue, mid) in totals.items()]


def _naive_effects(sends, by_customer, window_days):
    observations, arm_rows = [], []
    for r in sends:
        night = datetime.combine(r.run_date, clock())
        orders = by_customer.get(r.customer_id, ())
        after = [o for o in orders if night <= o.placed_at < night + timedelta(days=window_days)]
        before = [o for o in orders if night - timedelta(days=lojal_report.PRE_PERIOD_DAYS) <= o.placed_at < night]
        revenue, pre = sum((o.revenue for o in after), Decimal(0)), sum((o.revenue for o in before), Decimal(0))
        group = "mailed" if r.state == "sent" else "held_out"
        observations.append(Observation(group, bool(after), revenue, pre))
        if group == "mailed":
            arm_rows.append(Observation(r.variant or "", bool(after), revenue, pre))
    arms = compare_arms(arm_rows, 0.95, 1000) if len({o.group for o in arm_rows}) > 1 else None
    return lift(observations, 0.95, True), arms


# --- the run ---------------------------------------------------------------------------------------

def timed(fn, *args):
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn(*args)
    return result, time.perf_counter() - wall, time.process_time() - cpu


def _database(what: str) -> None:
    """DROP, or (re)CREATE, the bench's own PostgreSQL database."""
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text('DROP DATABASE IF EXISTS "lojal_bench_report" WITH (FORCE)'))
        if what == "CREATE":
            conn.execute(text('CREATE DATABASE "lojal_bench_report"'))
    admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--sends", type=int, default=300_000)
    parser.add_argument("--store", choices=("postgresql", "sqlite"), default="postgresql")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result: dict = {"load_before": os.getloadavg(), "cpu_count": os.cpu_count(), "store": args.store}
    if args.store == "postgresql":
        _database("CREATE")
        url = POSTGRES_URL.rsplit("/", 1)[0] + "/lojal_bench_report"
    else:
        url = f"sqlite:///{tempfile.mkdtemp(prefix='lojal-bench-report-')}/store.db"
    result["store_rows"], result["build_s"], _ = timed(build_store, url, args.customers, args.sends)
    print(f"store: {result['store_rows']} in {result['build_s']:.1f} s", file=sys.stderr, flush=True)
    engine = connect(url)
    date_from = NIGHT - timedelta(days=NIGHTS - 1)
    try:
        lojal_report.gather(engine, date_from, NIGHT)  # warm-up: the tables in the database's cache
        new, result["lojal_s"], result["lojal_cpu_s"] = timed(lojal_report.gather, engine, date_from, NIGHT)
        old, result["naive_s"], result["naive_cpu_s"] = timed(naive_gather, engine, date_from, NIGHT)
    finally:
        engine.dispose()
        if args.store == "postgresql":
            _database("DROP")
    result["identical"] = repr(new) == repr(old)
    result["ratio_wall"] = result["naive_s"] / result["lojal_s"]
    result["ratio_cpu_of_this_process"] = result["naive_cpu_s"] / result["lojal_cpu_s"]
    result["campaigns"] = {c.campaign_id: {"sent": c.total("sent"), "conversions": c.conversions,
                                           "revenue": str(c.revenue), "held_out": c.lift.held_out.recipients}
                           for c in new.campaigns}
    result["load_after"] = os.getloadavg()
    if args.json:
        print(json.dumps(result, indent=2, default=str))
    else:
        print(f"gather: Lojal {result['lojal_s']:.2f} s ({result['lojal_cpu_s']:.2f} s CPU of this process), naive "
              f"{result['naive_s']:.2f} s ({result['naive_cpu_s']:.2f} s CPU): {result['ratio_wall']:.1f}x wall, "
              f"{result['ratio_cpu_of_this_process']:.1f}x CPU; identical reports: {result['identical']}; "
              f"load {result['load_before'][0]:.2f} -> {result['load_after'][0]:.2f}")
    if not result["identical"]:
        raise SystemExit("the two ways gave different reports")


if __name__ == "__main__":
    main()
