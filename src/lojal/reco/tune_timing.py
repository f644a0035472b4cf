"""Grid search of the repurchase model on a tuning split (never the report split).

    python -m lojal.reco.tune_timing --orders FILE --cutoff 2011-10-11 [--window-days 14] [--product-pattern '^\\d{5}']

Two groups, tuned in turn on the ROC AUC of `lojal` in `evaluate_timing`: first the training data
(snapshots), then the trees (leaves × learning rate, 200 rounds). Prints every grid point (AUC and
top-1,000 precision) and the chosen values as JSON.
"""

from __future__ import annotations

import argparse
import itertools
import json
from dataclasses import replace
from pathlib import Path

import pandas as pd

from lojal.reco.io import parse_columns, read_orders
from lojal.reco.repurchase import RepurchaseParams
from lojal.reco.timing import evaluate_timing

GRIDS = (
    {"snapshots": [2, 4, 6, 10]},
    {"max_leaf_nodes": [7, 15, 31], "learning_rate": [0.03, 0.05, 0.1]},
)


def tune(lines: pd.DataFrame, cutoff: pd.Timestamp, window_days: int) -> dict:
    best = RepurchaseParams(window_days=window_days, step_days=max(window_days, 14))
    report: dict = {"grids": []}
    for grid in GRIDS:
        names = list(grid)
        points = []
        for values in itertools.product(*(grid[n] for n in names)):
            params = replace(best, **dict(zip(names, values)))
            lojal = evaluate_timing(lines, cutoff, window_days, params).results["lojal"]
            points.append({**dict(zip(names, values)), "auc": round(lojal.auc, 4),
                           "precision_at_1000": round(lojal.precision_at_1000, 4)})
            print(json.dumps(points[-1]), flush=True)
        chosen = max(points, key=lambda p: p["auc"])
        best = replace(best, **{n: chosen[n] for n in names})
        report["grids"].append(points)
    report["best"] = {n: getattr(best, n) for g in GRIDS for n in g}
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=Path, required=True)
    parser.add_argument("--cutoff", required=True)
    parser.add_argument("--window-days", type=int, default=14)
    parser.add_argument("--product-pattern")
    args = parser.parse_args()
    lines, _ = read_orders(args.orders, parse_columns(None), args.product_pattern)
    print(json.dumps(tune(lines, pd.Timestamp(args.cutoff), args.window_days)["best"]))


if __name__ == "__main__":
    main()
