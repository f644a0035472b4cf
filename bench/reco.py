"""Recommendation benchmark: fit and score a synthetic shop of 1,000,000 customers × 20,000 products.

    .venv/bin/python bench/reco.py [--customers 1000000] [--products 20000] [--json]

Synthetic purchase history (numpy): each customer has 1 + Poisson(7) purchase occasions over a year;
70% re-buy one of the customer's five "usual" products, 30% pick from a Zipf-like catalogue. Reports
fit time per strategy, chunked scoring of every customer (top-10) for the three personal strategies, the full ranking
with business rules (on --rank-sample customers, all of them by default), peak memory (max RSS),
and `top_candidates` against plain argpartition and a full argsort on the same score blocks.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time

import numpy as np
import pandas as pd

from lojal.reco.recommender import Blend, fit_on_history
from lojal.reco.rules import _top_by_partition, top_candidates
from lojal.reco.strategies import RecoParams

AS_OF = pd.Timestamp("2025-01-01")


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2


def synthetic_lines(n_customers: int, n_products: int, seed: int = 7) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    weights = 1.0 / (np.arange(n_products) + 10.0)
    cumulative = np.cumsum(weights / weights.sum())

    def zipf(size) -> np.ndarray:
        return np.minimum(np.searchsorted(cumulative, rng.random(size)), n_products - 1)

    per_customer = 1 + rng.poisson(7, n_customers)
    customers = np.repeat(np.arange(1, n_customers + 1, dtype=np.int64), per_customer)
    usual = zipf((n_customers, 5))
    own = usual[customers - 1, rng.integers(0, 5, len(customers))]
    items = np.where(rng.random(len(customers)) < 0.7, own, zipf(len(customers)))
    minutes = rng.integers(0, 365 * 24 * 60, len(customers))
    skus = pd.Categorical.from_codes(items, categories=[f"P{i:05d}" for i in range(n_products)])
    prices = rng.uniform(2, 200, n_products).round(2)
    return pd.DataFrame({"customer_id": customers, "sku": skus,
                         "placed_at": AS_OF - pd.to_timedelta(minutes + 1, unit="min"),
                         "unit_price": prices[items]})


def score_everyone(recommender, strategy: str, chunk: int, k: int) -> float:
    n = recommender.model.inter.n_customers
    start = time.perf_counter()
    for first in range(0, n, chunk):
        rows = np.arange(first, min(first + chunk, n))
        top_candidates(recommender.model.score(strategy, rows), k)
    return time.perf_counter() - start


def naive_top_k(recommender, chunks: int, chunk: int, k: int) -> dict:
    """top_candidates against plain argpartition and a full argsort, on the same score blocks."""
    out: dict = {"customers": chunks * chunk}
    for strategy in ("repeat", "ease", "popular"):
        blocks = [recommender.model.score(strategy, np.arange(i * chunk, (i + 1) * chunk)) for i in range(chunks)]
        timings, tops = {}, {}
        for name, top in (("top_candidates", lambda b: top_candidates(b, k)),
                          ("argpartition", lambda b: _top_by_partition(b, k)),
                          ("argsort", lambda b: _top_by_sort(b, k))):
            start = time.perf_counter()
            tops[name] = [top(block) for block in blocks]
            timings[name] = time.perf_counter() - start
        same = all(_same_positive_top(fast, slow) for fast, slow in zip(tops["top_candidates"], tops["argsort"]))
        out[strategy] = {**{f"{n}_s": t for n, t in timings.items()}, "same_top_scores": same,
                         "vs_argpartition": timings["argpartition"] / timings["top_candidates"],
                         "vs_argsort": timings["argsort"] / timings["top_candidates"]}
    return out


def _top_by_sort(block: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(-block, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(block, order, axis=1)


def _same_positive_top(fast, slow) -> bool:
    """Same scores where the slow way found positive ones (top_candidates pads the rest with -inf)."""
    positive = slow[1] > 0
    return bool((np.where(positive, slow[1], -np.inf) == fast[1]).all())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--products", type=int, default=20_000)
    parser.add_argument("--ease-items", type=int, default=RecoParams().ease_max_items)
    parser.add_argument("--chunk", type=int, default=1_000)
    parser.add_argument("--rank-sample", type=int, default=None, help="rank only the first N customers")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    report: dict = {"customers": args.customers, "products": args.products, "cpu_count": os.cpu_count(),
                    "ease_items": args.ease_items, "chunk": args.chunk}

    start = time.perf_counter()
    lines = synthetic_lines(args.customers, args.products)
    report["lines"] = len(lines)
    report["generate_s"] = time.perf_counter() - start

    start = time.perf_counter()
    recommender = fit_on_history(lines, AS_OF, RecoParams(ease_max_items=args.ease_items))
    report["fit_s"] = time.perf_counter() - start
    report["fit_breakdown_s"] = dict(recommender.model.timings)
    report["fit_matrix_s"] = report["fit_s"] - sum(recommender.model.timings.values())
    report["nnz"] = int(recommender.model.inter.occasions.nnz)
    report["peak_rss_after_fit_gb"] = peak_rss_gb()
    del lines

    report["score_all_s"] = {s: score_everyone(recommender, s, args.chunk, 10) for s in ("repeat", "co_purchase", "ease")}
    report["peak_rss_after_scoring_gb"] = peak_rss_gb()

    sample = recommender.model.inter.customer_ids[:args.rank_sample]  # None: all
    blend = Blend((("repeat", 2), ("ease", 2)), ("popular", "trending"), 30, 2, None, 0.0)
    start = time.perf_counter()
    recommender.rank(sample, blend)
    report["rank_with_rules_s"] = {"customers": len(sample), "seconds": time.perf_counter() - start}
    report["naive_comparison"] = naive_top_k(recommender, 10, args.chunk, 4 * 4 + 50)
    report["peak_rss_gb"] = peak_rss_gb()
    print(json.dumps(report, indent=2) if args.json else _summary(report))


def _summary(r: dict) -> str:
    fit = ", ".join(f"{k} {v:.1f}s" for k, v in r["fit_breakdown_s"].items())
    score = ", ".join(f"{k} {v:.1f}s" for k, v in r["score_all_s"].items())
    naive = r["naive_comparison"]
    rank = r["rank_with_rules_s"]
    top_k = "; ".join(f"{s} {v['top_candidates_s']:.2f}s vs argpartition {v['argpartition_s']:.2f}s "
                      f"({v['vs_argpartition']:.1f}x) vs argsort {v['argsort_s']:.2f}s ({v['vs_argsort']:.1f}x), "
                      f"same top scores: {v['same_top_scores']}"
                      for s, v in naive.items() if s != "customers")
    return "\n".join([
        f"reco benchmark: {r['customers']:,} customers × {r['products']:,} products, {r['lines']:,} lines "
        f"({r['nnz']:,} customer-product pairs), {r['cpu_count']} CPUs, EASE on {r['ease_items']:,} items",
        f"fit: {r['fit_s']:.1f}s (matrices {r['fit_matrix_s']:.1f}s, {fit}); peak RSS {r['peak_rss_after_fit_gb']:.2f} GB",
        f"score all customers, chunks of {r['chunk']:,}, top-10: {score}; "
        f"peak RSS {r['peak_rss_after_scoring_gb']:.2f} GB",
        f"rank with business rules (2 repeat + 2 EASE, fallbacks): {rank['customers']:,} customers in "
        f"{rank['seconds']:.1f}s ({rank['seconds'] / rank['customers'] * 1e6:.0f} µs per customer)",
        f"top-66 candidates of {naive['customers']:,} rows: {top_k}",
        f"peak RSS overall {r['peak_rss_gb']:.2f} GB",
    ])


if __name__ == "__main__":
    main()
