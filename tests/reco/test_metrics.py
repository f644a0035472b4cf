"""Ranking metrics on hand-made lists whose values are worked out by hand."""

import math

import pandas as pd
import pytest

from lojal.reco.evaluate import ranking_metrics, time_split


def test_recall_ndcg_hit_rate_by_hand():
    # customer A: truth {a, b, c}; list [a, x, b] → 2 hits at ranks 1 and 3
    # customer B: truth {z};       list [x, y, w] → no hit
    recommended = [["a", "x", "b"], ["x", "y", "w"]]
    truth = [frozenset("abc"), frozenset("z")]
    bought = [frozenset("a"), frozenset()]
    m = ranking_metrics(recommended, truth, bought, k=3, catalogue_size=10)

    recall_a = 2 / 3
    dcg_a = 1 / math.log2(2) + 1 / math.log2(4)
    idcg_a = 1 / math.log2(2) + 1 / math.log2(3) + 1 / math.log2(4)
    assert m.recall == pytest.approx((recall_a + 0) / 2)
    assert m.ndcg == pytest.approx((dcg_a / idcg_a + 0) / 2)
    assert m.hit_rate == pytest.approx(0.5)
    # shown: a, x, b, y, w = 5 of 10 products
    assert m.coverage == pytest.approx(0.5)
    # repeat truth: only A has one ({a}) and hits it → 1.0
    assert m.recall_repeat == pytest.approx(1.0)
    # new truth: A {b, c} → 1/2 hit; B {z} → 0 → mean 0.25
    assert m.recall_new == pytest.approx(0.25)


def test_recall_divides_by_truth_size_and_ndcg_ideal_uses_min_k_truth():
    # truth of 4 items, K = 2, both slots hit: recall 2/4, NDCG 1 (ideal has only 2 slots)
    m = ranking_metrics([["a", "b"]], [frozenset("abcd")], [frozenset()], k=2, catalogue_size=4)
    assert m.recall == pytest.approx(0.5)
    assert m.ndcg == pytest.approx(1.0)


def test_only_first_k_items_count():
    m = ranking_metrics([["x", "a"]], [frozenset("a")], [frozenset()], k=1, catalogue_size=2)
    assert m.recall == 0.0 and m.hit_rate == 0.0 and m.coverage == pytest.approx(0.5)


def test_time_split_keeps_customers_active_on_both_sides():
    lines = pd.DataFrame({
        "customer_id": [1, 1, 1, 2, 3, 3],
        "sku": ["a", "b", "c", "a", "a", "d"],
        "placed_at": pd.to_datetime(["2024-01-01", "2024-02-05", "2024-02-20", "2024-01-02",
                                     "2024-02-10", "2024-03-20"]),
    })
    split = time_split(lines, pd.Timestamp("2024-02-01"), horizon_days=30)
    # 1: before + twice inside; 2: only before; 3: inside only (before the cutoff nothing)
    assert list(split.customers) == [1]
    assert split.truth == [frozenset({"b", "c"})]
    assert split.bought == [frozenset({"a"})]
    assert split.train["placed_at"].max() < pd.Timestamp("2024-02-01")
