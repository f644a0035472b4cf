"""The repurchase model: trained on history alone, never on what happens after as_of."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from lojal.reco.reasons import reorder_reason
from lojal.reco.repurchase import (FEATURE_NAMES, RepurchaseParams, fit_repurchase, occasions_from_lines,
                                   pair_features, score_occasions)

AS_OF = pd.Timestamp("2024-06-01")
FAST = RepurchaseParams(max_iter=30, min_samples_leaf=20)
REPO = Path(__file__).resolve().parents[2]


def cyclic_lines(customers: int = 150, seed: int = 3, until: pd.Timestamp = AS_OF) -> pd.DataFrame:
    """Each customer re-buys one product on a steady cycle (10–60 days, ±2 days) for a year, plus
    occasional one-off products; a third of them stopped buying some months ago."""
    rng = np.random.default_rng(seed)
    rows = []
    start = until - pd.Timedelta(days=400)
    for c in range(1, customers + 1):
        cycle = int(rng.integers(10, 61))
        stop = until - pd.Timedelta(days=int(rng.integers(120, 200))) if c % 3 == 0 else until + pd.Timedelta(days=90)
        day = start + pd.Timedelta(days=int(rng.integers(0, cycle)))
        while day < min(stop, until + pd.Timedelta(days=60)):
            rows.append((c, f"P{c % 40}", day + pd.Timedelta(hours=10), int(rng.integers(1, 4))))
            if rng.random() < 0.3:
                rows.append((c, f"X{int(rng.integers(0, 200))}", day + pd.Timedelta(hours=11), 1))
            day += pd.Timedelta(days=cycle + int(rng.integers(-2, 3)))
    return pd.DataFrame(rows, columns=["customer_id", "sku", "placed_at", "quantity"])


def test_nothing_after_as_of_changes_the_scores():
    lines = cyclic_lines()
    past = lines[lines["placed_at"] < AS_OF]
    assert len(past) < len(lines)           # the frame really has a future
    with_future = fit_repurchase(lines, AS_OF, FAST)
    history_only = fit_repurchase(past, AS_OF, FAST)
    assert with_future.method == "model"
    np.testing.assert_array_equal(with_future.probability, history_only.probability)
    np.testing.assert_array_equal(with_future.skus, history_only.skus)
    # and the future is not the same: scores move when it is the past
    later = fit_repurchase(lines, AS_OF + pd.Timedelta(days=28), FAST)
    assert len(later.probability) != len(history_only.probability) or not np.allclose(
        later.probability, history_only.probability)


def test_training_labels_come_from_windows_that_end_by_as_of():
    scores = fit_repurchase(cyclic_lines(), AS_OF, FAST)
    as_of_day = int(AS_OF.to_datetime64().astype("datetime64[D]").astype(np.int64))
    windows = scores.training["label_windows"]
    assert len(windows) == FAST.snapshots
    assert all(end <= as_of_day and end - start == FAST.window_days for start, end in windows)
    assert max(end for _, end in windows) == as_of_day - FAST.step_days + FAST.window_days
    with pytest.raises(ValueError, match="step_days"):
        RepurchaseParams(window_days=21, step_days=14)


def test_features_at_a_day_see_only_the_occasions_before_it():
    occ = occasions_from_lines(cyclic_lines())
    at = int(AS_OF.to_datetime64().astype("datetime64[D]").astype(np.int64)) - 30
    full, cut = pair_features(occ, at), pair_features(occ.before(at), at)
    np.testing.assert_array_equal(full.X, cut.X)
    assert (full.column("occasions") >= 2).all() and (full.column("days_since_last") >= 1).all()
    assert full.X.shape[1] == len(FEATURE_NAMES)


def test_pair_features_on_a_hand_counted_pair():
    lines = pd.DataFrame({"customer_id": [1, 1, 1, 1, 2], "sku": ["A", "A", "A", "A", "A"],
                          "placed_at": pd.to_datetime(["2024-01-01 09:00", "2024-01-01 15:00", "2024-01-11 00:00",
                                                       "2024-01-31 00:00", "2024-01-20 00:00"]),
                          "quantity": [1, 1, 2, 6, 1]})
    occ = occasions_from_lines(lines)
    features = pair_features(occ, int(np.datetime64("2024-02-10", "D").astype(np.int64)))
    assert len(features.X) == 1                 # customer 2 bought A once: not a candidate
    row = dict(zip(FEATURE_NAMES, features.X[0]))
    assert row["occasions"] == 3                # two lines on 1 January are one occasion
    assert row["days_since_last"] == 10 and row["days_since_first"] == 40
    assert row["own_median_gap"] == 15 and row["last_gap"] == 20 and row["own_mean_gap"] == 15
    assert row["quantity_trend"] == pytest.approx(6 / ((2 + 2 + 6) / 3))
    assert np.isnan(row["product_median_gap"])  # 2 gaps across customers: fewer than 3


def test_the_model_ranks_due_pairs_above_lapsed_and_early_ones():
    lines = cyclic_lines(customers=240)
    occ = occasions_from_lines(lines)
    as_of_day = int(AS_OF.to_datetime64().astype("datetime64[D]").astype(np.int64))
    scores = score_occasions(occ, as_of_day, FAST)
    due = scores.features.column("since_over_own_median")
    p = scores.probability
    lapsed = due > 3                            # stopped months ago
    on_time = (due > 0.7) & (due < 1.3)
    assert lapsed.any() and on_time.any()
    assert p[on_time].mean() > 3 * p[lapsed].mean()


def test_too_little_history_uses_the_rule():
    lines = pd.DataFrame({"customer_id": [1, 1, 1, 2, 2], "sku": ["T", "T", "T", "U", "U"],
                          "placed_at": pd.to_datetime(["2024-03-03", "2024-04-02", "2024-05-02",
                                                       "2023-01-01", "2023-01-31"]), "quantity": 1})
    scores = fit_repurchase(lines, AS_OF)
    assert scores.method == "rule"
    p = dict(zip(scores.customer_ids, scores.probability))
    assert p[1] > 0.9 > 0.01 > p[2]             # due about now vs. lapsed a year ago


@pytest.mark.parametrize("days, code, unit", [(1.0, "reorder_due", ("days", 2)), (9.4, "reorder_due", ("days", 9)),
                                              (42.0, "reorder_due_weeks", ("weeks", 6)),
                                              (14.0, "reorder_due_weeks", ("weeks", 2)),
                                              (91.0, "reorder_due_months", ("months", 3))])
def test_the_reason_speaks_in_days_weeks_or_months(days, code, unit):
    got_code, params = reorder_reason(days, "Tea")
    assert got_code == code and params[unit[0]] == unit[1] and params["product"] == "Tea"


def test_every_locale_says_the_rhythm():
    reasons = yaml.safe_load((REPO / "templates" / "_shared" / "strings.yaml").read_text(encoding="utf-8"))["reasons"]
    for days in (5, 42, 120):
        code, params = reorder_reason(days, "Tea")
        assert set(reasons[code]) == {"en", "nb", "sv", "da"}
        for text in reasons[code].values():
            formatted = text.format(**params)
            assert "Tea" in formatted and str(params.get("weeks", params.get("months", params["days"]))) in formatted


def test_training_on_a_sample_of_customers_keeps_their_rows_exact():
    occ = occasions_from_lines(cyclic_lines())
    at = int(AS_OF.to_datetime64().astype("datetime64[D]").astype(np.int64)) - 14
    chosen = np.zeros(len(occ.customer_ids), bool)
    chosen[::3] = True
    full, sample = pair_features(occ, at), pair_features(occ, at, chosen)
    assert 0 < len(sample.X) < len(full.X) and chosen[sample.customer].all()
    index = {(c, i): n for n, (c, i) in enumerate(zip(full.customer, full.item))}
    rows = [index[(c, i)] for c, i in zip(sample.customer, sample.item)]
    # product features still count every customer, so a sampled row equals the full row
    np.testing.assert_array_equal(sample.X, full.X[rows])
    small = RepurchaseParams(max_iter=30, min_samples_leaf=20, max_train_rows=300)
    scores = fit_repurchase(cyclic_lines(), AS_OF, small)
    assert scores.training["rows"] < 0.5 * fit_repurchase(cyclic_lines(), AS_OF, FAST).training["rows"]


def test_snapshots_computed_side_by_side_give_the_same_training_set_in_the_same_order():
    from dataclasses import replace

    from lojal.reco.repurchase import training_set

    lines = cyclic_lines(customers=300)
    occ = occasions_from_lines(lines[lines["placed_at"] < AS_OF])
    day = int(AS_OF.to_datetime64().astype("datetime64[D]").astype(np.int64))
    one = training_set(occ, day, replace(FAST, snapshot_threads=1))
    three = training_set(occ, day, replace(FAST, snapshot_threads=3))
    assert len(one[2]) == FAST.snapshots and one[2] == sorted(one[2], reverse=True)  # newest snapshot first
    np.testing.assert_array_equal(one[0], three[0])
    np.testing.assert_array_equal(one[1], three[1])
    assert one[2] == three[2]


def test_candidates_scored_in_parts_at_once_get_the_probabilities_of_one_call():
    from dataclasses import replace

    lines = cyclic_lines(customers=300)
    one = fit_repurchase(lines, AS_OF, replace(FAST, score_threads=1))
    three = fit_repurchase(lines, AS_OF, replace(FAST, score_threads=3))
    assert one.method == three.method == "model" and len(one.probability) > 100
    np.testing.assert_array_equal(one.probability, three.probability)
    np.testing.assert_array_equal(one.customer_ids, three.customer_ids)
