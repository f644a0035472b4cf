"""Grid search of the hyper-parameters on a tuning split (never the report split).

    python -m lojal.reco.tune --orders FILE --cutoff 2011-10-11 [--product-pattern '^\\d{5}']

Each parameter group is tuned on the metric of the strategy it drives: the repeat decay and
popularity prior on NDCG@K of "repeat>ease", EASE's lambda and the kNN neighbours on recall of new
items. Prints every grid point and the best values as JSON.
"""

from __future__ import annotations

import argparse
import itertools
import json
from dataclasses import replace
from pathlib import Path

import pandas as pd

from lojal.reco.evaluate import Split, evaluate_split, evaluation_blends, time_split
from lojal.reco.io import parse_columns, read_orders
from lojal.reco.strategies import RecoParams

GRIDS = {
    "repeat>ease": ({"half_life_days": [30, 60, 90, 180, 365], "popularity_exponent": [0.0, 0.25, 0.5, 1.0]}, "ndcg"),
    "ease": ({"ease_lambda": [50.0, 200.0, 500.0, 1000.0, 3000.0]}, "recall_new"),
    "co_purchase": ({"knn_neighbours": [20, 50, 100, 200, 500]}, "recall_new"),
}


def tune(split: Split, k: int, base: RecoParams = RecoParams()) -> tuple[RecoParams, list[dict]]:
    blends = evaluation_blends(k)
    best, log = base, []
    for blend_name, (grid, metric) in GRIDS.items():
        scored = []
        for values in itertools.product(*grid.values()):
            overrides = dict(zip(grid, values))
            params = replace(best, **overrides)
            result = evaluate_split(split, k, params, {blend_name: blends[blend_name]})[blend_name]
            scored.append((getattr(result, metric), overrides))
            log.append({"blend": blend_name, "metric": metric, **overrides, "value": round(getattr(result, metric), 4)})
            print(json.dumps(log[-1]), flush=True)
        best = replace(best, **max(scored, key=lambda item: item[0])[1])
    return best, log


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=Path, required=True)
    parser.add_argument("--cutoff", required=True)
    parser.add_argument("--horizon-days", type=int, default=30)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--columns", default=None)
    parser.add_argument("--product-pattern", default=None)
    args = parser.parse_args()
    lines, _ = read_orders(args.orders, parse_columns(args.columns), args.product_pattern)
    split = time_split(lines, pd.Timestamp(args.cutoff), args.horizon_days)
    best, _ = tune(split, args.k)
    print(json.dumps({"best": {name: getattr(best, name) for grid, _ in GRIDS.values() for name in grid}}))


if __name__ == "__main__":
    main()
