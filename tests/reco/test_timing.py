"""`lojal reco evaluate-timing`: metrics with ties, candidates and labels, the JSON interface."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from lojal.reco.cli import app
from lojal.reco.timing import precision_at, roc_auc

runner = CliRunner()
COLUMNS = "customer=cust,product=item,time=when,quantity=qty,price=unit,order=invoice"
NAMES = {"lojal", "frequency", "fixed_30_day", "own_median_gap", "product_median_gap", "recency"}


def test_auc_averages_ties_and_matches_the_pair_count():
    assert roc_auc(np.array([1.0, 1.0]), np.array([1, 0])) == 0.5
    assert roc_auc(np.array([3.0, 2.0, 1.0]), np.array([1, 0, 0])) == 1.0
    scores, y = np.array([0.1, 0.4, 0.35, 0.8, 0.4]), np.array([0, 0, 1, 1, 1])
    wins = sum((s_p > s_n) + 0.5 * (s_p == s_n) for s_p, yp in zip(scores, y) if yp
               for s_n, yn in zip(scores, y) if not yn)
    assert roc_auc(scores, y) == pytest.approx(wins / 6)
    assert np.isnan(roc_auc(np.array([1.0, 2.0]), np.array([1, 1])))


def test_precision_counts_a_tied_group_at_the_cut_in_proportion():
    scores = np.array([5.0, 3.0, 3.0, 3.0, 1.0])
    y = np.array([1, 1, 0, 0, 1])
    assert precision_at(scores, y, 1) == 1.0
    assert precision_at(scores, y, 2) == pytest.approx((1 + 1 / 3) / 2)   # one of the three tied, 1/3 positive
    assert precision_at(scores, y, 4) == pytest.approx((1 + 3 * 1 / 3) / 4)
    assert precision_at(scores, y, 10) == pytest.approx(3 / 5)


def hand_orders() -> pd.DataFrame:
    """Cutoff 2024-03-01, window 14 days. Candidates: (1, A) 3 days, re-bought 5 March → positive;
    (2, B) 2 days, re-bought 20 March (after the window) → negative; (3, C) 2 days, never again.
    Not candidates: (4, D) bought once; (1, E) twice but one of them cancelled; (5, F) twice on one day."""
    rows = [
        ("101", 1, "A", "2024-01-10 10:00"), ("102", 1, "A", "2024-02-01 10:00"), ("103", 1, "A", "2024-02-20 10:00"),
        ("104", 1, "A", "2024-03-05 10:00"),
        ("201", 2, "B", "2024-01-15 10:00"), ("202", 2, "B", "2024-02-15 10:00"), ("203", 2, "B", "2024-03-20 10:00"),
        ("301", 3, "C", "2024-02-01 10:00"), ("302", 3, "C", "2024-02-25 10:00"),
        ("401", 4, "D", "2024-02-01 10:00"),
        ("105", 1, "E", "2024-01-10 10:00"), ("C106", 1, "E", "2024-02-10 10:00"),
        ("501", 5, "F", "2024-02-10 09:00"), ("502", 5, "F", "2024-02-10 17:00"),
    ]
    return pd.DataFrame([{"invoice": i, "cust": c, "item": p, "when": w, "qty": 1, "unit": 4.0} for i, c, p, w in rows])


def invoke(path: Path, *extra: str):
    return runner.invoke(app, ["evaluate-timing", "--orders", str(path), "--cutoff", "2024-03-01",
                               "--columns", COLUMNS, *extra])


def test_json_interface_on_hand_counted_pairs(tmp_path):
    path = tmp_path / "orders.csv"
    hand_orders().to_csv(path, index=False)
    result = invoke(path, "--window-days", "14", "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert set(payload) == {"pairs", "positives", "results"}
    assert (payload["pairs"], payload["positives"]) == (3, 1)
    assert set(payload["results"]) == NAMES
    for metrics in payload["results"].values():
        assert set(metrics) == {"auc", "precision_at_1000", "precision_top5pct"}
    frequency = payload["results"]["frequency"]
    assert frequency["auc"] == 1.0                       # the positive pair has the most occasions (3 vs 2, 2)
    assert frequency["precision_at_1000"] == pytest.approx(1 / 3, abs=1e-4)   # all three pairs fit in the top 1,000
    assert frequency["precision_top5pct"] == 1.0         # top 5% of 3 pairs = the best one
    # days since last: A 10, B 15, C 5 → recency ranks C first (negative), A second
    assert payload["results"]["recency"]["auc"] == 0.5
    # a window of 30 days reaches the 20 March re-purchase
    wide = json.loads(invoke(path, "--window-days", "30", "--json").stdout)
    assert (wide["pairs"], wide["positives"]) == (3, 2)


def test_parquet_and_table_output(tmp_path):
    path = tmp_path / "orders.parquet"
    hand_orders().to_parquet(path)
    result = invoke(path)
    assert result.exit_code == 0, result.output
    assert "3 pairs bought on 2+ days before 2024-03-01, 1 re-bought within 14 days" in result.stdout
    for name in NAMES:
        assert name in result.stdout


def test_clear_errors(tmp_path):
    path = tmp_path / "orders.csv"
    hand_orders().to_csv(path, index=False)
    early = runner.invoke(app, ["evaluate-timing", "--orders", str(path), "--cutoff", "2023-01-01", "--columns", COLUMNS])
    assert early.exit_code != 0 and "no customer bought a product on two different days before 2023-01-01" in early.output
    bad = runner.invoke(app, ["evaluate-timing", "--orders", str(path), "--cutoff", "1 March"])
    assert bad.exit_code != 0 and "not a date" in bad.output
    unmapped = runner.invoke(app, ["evaluate-timing", "--orders", str(path), "--cutoff", "2024-03-01"])
    assert unmapped.exit_code != 0 and "column 'CustomerID' (mapped to customer) not found" in unmapped.output
