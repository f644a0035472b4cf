"""Repurchase model benchmark: fit and score the pairs of 1,000,000 customers.

    .venv/bin/python bench/repurchase.py [--customers 1000000] [--naive-customers 20000] [--json]

Synthetic history over one year (numpy): each customer has 1 + Poisson(1) "usual" products, each
re-bought on its own cycle (14–120 days, gamma-distributed gaps with shape 4) until the customer
stops buying it (a third of the pairs stop at a random day), plus Poisson(3) one-off purchases from a
Zipf-like catalogue of 20,000 products; quantities 1–4. Reports, for the nightly `fit_repurchase`
(default RepurchaseParams: 10 training snapshots, 200 rounds, one thread; tonight's pairs described
beside the fit): the time of the features of every snapshot, the fit, the scoring of every candidate
pair, the total and the peak memory; then the
naive way: the same pair features computed per pair in a pandas groupby loop, on the first
--naive-customers customers, extrapolated per pair to the full run (same values checked).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time

import numpy as np
import pandas as pd

from lojal.reco.repurchase import FEATURE_NAMES, RepurchaseParams, fit_repurchase, occasions_from_lines, pair_features

AS_OF = pd.Timestamp("2025-01-01")
YEAR = 365


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2


def synthetic_lines(n_customers: int, n_products: int = 20_000, seed: int = 11) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    weights = 1.0 / (np.arange(n_products) + 10.0)
    cumulative = np.cumsum(weights / weights.sum())

    def zipf(size) -> np.ndarray:
        return np.minimum(np.searchsorted(cumulative, rng.random(size)), n_products - 1)

    usual = 1 + rng.poisson(1.0, n_customers)
    pair_customer = np.repeat(np.arange(1, n_customers + 1, dtype=np.int64), usual)
    n_pairs = len(pair_customer)
    pair_item = zipf(n_pairs)
    cycle = rng.uniform(14, 120, n_pairs)
    max_occasions = 26
    gaps = rng.gamma(4.0, cycle[:, None] / 4.0, (n_pairs, max_occasions))
    days = rng.uniform(0, cycle)[:, None] + np.cumsum(gaps, axis=1)
    stop = np.where(rng.random(n_pairs) < 1 / 3, rng.uniform(0, YEAR, n_pairs), YEAR)
    keep = days < stop[:, None]
    rows, _ = np.nonzero(keep)
    cust = pair_customer[rows]
    item = pair_item[rows]
    day = days[keep]

    one_offs = rng.poisson(3.0, n_customers)
    cust = np.r_[cust, np.repeat(np.arange(1, n_customers + 1, dtype=np.int64), one_offs)]
    item = np.r_[item, zipf(int(one_offs.sum()))]
    day = np.r_[day, rng.uniform(0, YEAR, int(one_offs.sum()))]
    skus = pd.Categorical.from_codes(item, categories=[f"P{i:05d}" for i in range(n_products)])
    return pd.DataFrame({"customer_id": cust, "sku": skus,
                         "placed_at": AS_OF - pd.to_timedelta((YEAR - day) * 86_400 + 60, unit="s"),
                         "quantity": rng.integers(1, 5, len(cust))})


def naive_pair_features(lines: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
    """The obvious way: one Python call per (customer, product) with ≥ 2 purchase days."""
    frame = lines[lines["placed_at"] < as_of].assign(day=lambda f: f["placed_at"].dt.floor("D"))
    frame = frame.groupby(["customer_id", "sku", "day"], observed=True)["quantity"].sum().reset_index()
    today = as_of.floor("D")
    rows = []
    for (customer, sku), group in frame.groupby(["customer_id", "sku"], observed=True):
        if len(group) < 2:
            continue
        days = group["day"].sort_values()
        gaps = days.diff().dt.days.dropna()
        quantity = group.sort_values("day")["quantity"]
        rows.append({"customer_id": customer, "sku": str(sku), "occasions": len(group),
                     "days_since_last": (today - days.iloc[-1]).days, "own_median_gap": gaps.median(),
                     "own_mean_gap": gaps.mean(), "last_gap": gaps.iloc[-1],
                     "quantity_trend": quantity.iloc[-1] / quantity.mean()})
    return pd.DataFrame(rows)


def naive_comparison(lines: pd.DataFrame, n_customers: int, full_pairs: int, full_features_s: float) -> dict:
    sample = lines[lines["customer_id"] <= n_customers]
    start = time.process_time()
    naive = naive_pair_features(sample, AS_OF)
    naive_s = time.process_time() - start
    occ = occasions_from_lines(sample)
    as_of_day = int(AS_OF.to_datetime64().astype("datetime64[D]").astype(np.int64))
    start = time.process_time()
    fast = pair_features(occ, as_of_day)
    fast_s = time.process_time() - start
    fast_frame = pd.DataFrame(fast.X, columns=FEATURE_NAMES).assign(
        customer_id=occ.customer_ids[fast.customer], sku=occ.skus[fast.item].astype(str))
    merged = naive.merge(fast_frame, on=["customer_id", "sku"], suffixes=("_naive", ""))
    same = len(merged) == len(naive) == len(fast_frame) and all(
        np.allclose(merged[f"{c}_naive"].astype(float), merged[c].astype(float), rtol=1e-5)
        for c in ("occasions", "days_since_last", "own_median_gap", "own_mean_gap", "last_gap", "quantity_trend"))
    per_pair = naive_s / max(len(naive), 1)
    extrapolated = per_pair * full_pairs
    return {"customers": n_customers, "pairs": len(naive), "cpu_s": naive_s, "vectorized_cpu_s": fast_s,
            "same_values": bool(same), "vs_vectorized_same_pairs": naive_s / max(fast_s, 1e-9),
            "extrapolated_one_snapshot_cpu_s": extrapolated,
            "vs_vectorized_one_snapshot": extrapolated / full_features_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--naive-customers", type=int, default=20_000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    params = RepurchaseParams()
    report: dict = {"customers": args.customers, "cpu_count": os.cpu_count(), "load_before": os.getloadavg(),
                    "params": {"snapshots": params.snapshots, "max_iter": params.max_iter,
                               "max_train_rows": params.max_train_rows, "threads": params.threads}}
    start = time.perf_counter()
    lines = synthetic_lines(args.customers)
    report["lines"] = len(lines)
    report["generate_s"] = time.perf_counter() - start

    start, cpu = time.perf_counter(), time.process_time()
    scores = fit_repurchase(lines, AS_OF, params)
    report["fit_and_score_s"] = time.perf_counter() - start
    report["fit_and_score_cpu_s"] = time.process_time() - cpu
    report["breakdown_s"] = dict(scores.timings)
    report["occasions_s"] = report["fit_and_score_s"] - scores.timings["total"]
    report["candidate_pairs"] = int(len(scores.probability))
    report["training"] = {"rows": scores.training["rows"], "positives": scores.training["positives"],
                          "method": scores.method}
    report["peak_rss_gb"] = peak_rss_gb()
    report["naive"] = naive_comparison(lines, args.naive_customers, len(scores.probability),
                                       scores.timings["features_cpu"])
    report["load_after"] = os.getloadavg()
    print(json.dumps(report, indent=2) if args.json else _summary(report))


def _summary(r: dict) -> str:
    b, n = r["breakdown_s"], r["naive"]
    return "\n".join([
        f"repurchase benchmark: {r['customers']:,} customers, {r['lines']:,} lines, "
        f"{r['candidate_pairs']:,} candidate pairs (2+ purchase days), {r['cpu_count']} CPUs, "
        f"load {r['load_before'][0]:.1f} before / {r['load_after'][0]:.1f} after",
        f"fit + score: {r['fit_and_score_s']:.1f}s wall, {r['fit_and_score_cpu_s']:.1f}s CPU of this process; "
        f"wall = occasions and imports {r['occasions_s']:.1f}s, training features "
        f"({r['params']['snapshots']} snapshots) {b['training_features']:.1f}s, tonight's features {b['features']:.1f}s "
        f"beside the fit ({r['training']['rows']:,} rows sampled to {r['params']['max_train_rows']:,}, "
        f"{r['params']['max_iter']} rounds, {r['params']['threads']} thread) {b['fit']:.1f}s, "
        f"score {b['score']:.1f}s; peak RSS {r['peak_rss_gb']:.2f} GB",
        f"CPU: training features {b['training_features_cpu']:.1f}s, tonight's features {b['features_cpu']:.1f}s "
        f"(its thread), fit {b['fit_cpu']:.1f}s (its thread), score {b['score_cpu']:.1f}s",
        f"naive per-pair groupby loop: {n['pairs']:,} pairs of {n['customers']:,} customers in {n['cpu_s']:.1f}s CPU "
        f"vs {n['vectorized_cpu_s']:.2f}s vectorized ({n['vs_vectorized_same_pairs']:.0f}x, same values: "
        f"{n['same_values']}); extrapolated to one snapshot of the full run {n['extrapolated_one_snapshot_cpu_s']:.0f}s "
        f"CPU vs {b['features_cpu']:.1f}s ({n['vs_vectorized_one_snapshot']:.0f}x)",
    ])


if __name__ == "__main__":
    main()
