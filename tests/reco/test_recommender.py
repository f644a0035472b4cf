"""The pipeline's contract: slots filled in order, fallbacks, reasons; strategies with known answers."""

from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import yaml

from lojal.reco import Recommendation, RecommendationSpec, fit_recommender
from lojal.reco.strategies import cosine_neighbours, fit_ease, item_gram

CROWD = range(100, 110)
REPO = Path(__file__).resolve().parents[2]


def spec(*slots, **rules) -> RecommendationSpec:
    return RecommendationSpec(slots=[{"strategy": s, "count": n} for s, n in slots], **rules)


def catalogue(product):
    return ([product(f"T{i}", "Tea") for i in range(1, 5)] + [product(f"C{i}", "Coffee") for i in range(1, 5)]
            + [product(f"M{i}", "Mugs") for i in range(1, 5)])


def test_replenishment_reason_tells_the_customers_rhythm(build_shop, product):
    # customer 1 buys T1 every 30 days: due now (31 days since the last one as of 06-01)
    days = ["2024-02-01", "2024-03-02", "2024-04-01", "2024-05-01"]
    shop = build_shop(catalogue(product), [(1, "T1", d) for d in days] + [(1, "C1", "2024-05-01")])
    recommender = fit_recommender(shop)
    rec = recommender.recommend([1], spec(("replenishment", 1)))[1][0]
    assert (rec.sku, rec.strategy, rec.slot) == ("T1", "replenishment", 1)
    assert rec.reason_code == "reorder_due_weeks"
    assert rec.reason_params == {"days": 30, "weeks": 4, "product": "Title T1"}
    assert rec.reason == "You usually re-order this about every 4 weeks"
    assert recommender.model.due.nnz == 1          # C1 was bought once: not a replenishment candidate


def test_replenishment_prefers_the_product_that_is_due(build_shop, product):
    # T1 every 30 days, last 31 days ago (due); T2 every 30 days, last bought 5 days ago (not yet)
    t1 = [(1, "T1", d) for d in ("2024-02-01", "2024-03-02", "2024-04-01", "2024-05-01")]
    t2 = [(1, "T2", d) for d in ("2024-03-27", "2024-04-26", "2024-05-27")]
    rec = fit_recommender(build_shop(catalogue(product), t1 + t2))
    picks = rec.recommend([1], spec(("replenishment", 2)))[1]
    assert [r.sku for r in picks] == ["T1", "T2"]
    row = rec.model.inter.rows_of(np.array([1]))[0]
    assert rec.model.interval_days[row, 0] == pytest.approx(30.0)   # the own median gap


def test_repeat_reason_counts_purchase_occasions(build_shop, product):
    purchases = [(1, "C2", d) for d in ("2024-01-05", "2024-03-05", "2024-05-05")] + [(1, "T1", "2024-05-20")]
    recs = fit_recommender(build_shop(catalogue(product), purchases)).recommend([1], spec(("repeat", 2)))[1]
    assert [r.sku for r in recs] == ["C2", "T1"]  # three occasions beat one recent one
    assert recs[0].reason_params == {"times": 3} and recs[0].reason == "You have bought this 3 times"
    assert recs[1].reason == "You have bought this before"


def test_co_purchase_names_the_customers_item_it_goes_with(build_shop, product):
    together = [(c, sku, "2024-05-01") for c in CROWD for sku in ("T1", "M1")]
    purchases = together + [(1, "T1", "2024-05-25")]
    recs = fit_recommender(build_shop(catalogue(product), purchases)).recommend(
        [1], spec(("co_purchase", 1), fallbacks=[]))[1]
    assert [r.sku for r in recs] == ["M1"]
    assert recs[0].reason_code == "bought_together"
    assert recs[0].reason == "Because you bought Title T1"


def test_category_affinity_recommends_from_the_favourite_category(build_shop, product):
    purchases = [(c, sku, "2024-05-01") for c in CROWD for sku in ("T2", "C1", "M1")]
    purchases += [(1, "T1", "2024-04-01"), (1, "T1", "2024-05-01"), (1, "M2", "2023-06-01")]
    recs = fit_recommender(build_shop(catalogue(product), purchases)).recommend(
        [1], spec(("category_affinity", 1)))[1]
    assert recs[0].sku == "T2"
    assert recs[0].reason_params == {"category": "Tea"} and recs[0].reason == "More from Tea"


def test_slots_filled_in_order_with_positions(build_shop, product):
    purchases = [(c, sku, "2024-05-01") for c in CROWD for sku in ("T2", "C1", "M1", "M3")]
    purchases += [(1, "T1", "2024-01-01"), (1, "C3", "2024-02-01")]
    recs = fit_recommender(build_shop(catalogue(product), purchases)).recommend(
        [1], spec(("repeat", 2), ("popular", 2)))[1]
    assert [r.strategy for r in recs] == ["repeat", "repeat", "popular", "popular"]
    assert [r.slot for r in recs] == [1, 2, 3, 4]


def test_shortfall_moves_to_the_next_strategy_then_fallbacks(build_shop, product):
    purchases = [(c, sku, "2024-05-01") for c in CROWD for sku in ("T2", "C1", "M1", "M3", "C4")]
    purchases += [(1, "T1", "2024-01-01")]    # only one own product: repeat can give 1 of 3
    recs = fit_recommender(build_shop(catalogue(product), purchases)).recommend(
        [1], spec(("repeat", 3), ("popular", 1)))[1]
    assert [r.strategy for r in recs] == ["repeat", "popular", "popular", "popular"]


def test_new_customers_get_fallbacks(build_shop, product):
    purchases = [(c, sku, "2024-05-01") for c in CROWD for sku in ("T2", "C1", "M1", "M3")]
    recommender = fit_recommender(build_shop(catalogue(product), purchases))
    out = recommender.recommend(np.array([424242]), spec(("repeat", 2), ("ease", 2)))
    assert [r.strategy for r in out[424242]] == ["popular"] * 4
    assert {r.reason for r in out[424242]} == {"Popular right now"}


def test_recommendation_context_for_templates(build_shop, product):
    shop = build_shop(catalogue(product), [(1, "T1", "2024-05-01"), (1, "T1", "2024-05-10")])
    rec = fit_recommender(shop).recommend([1], spec(("repeat", 1)))[1][0]
    assert isinstance(rec, Recommendation)
    context = rec.to_context()
    assert context.pop("score") > 0  # the strategy's score, recorded with the send
    assert context == {"sku": "T1", "title": "Title T1", "category": "Tea", "price": 10.0, "currency": "NOK",
                       "image_url": "https://shop.example/T1.jpg", "product_url": "https://shop.example/p/T1",
                       "strategy": "repeat", "slot": 1, "reason_code": "bought_before",
                       "reason_params": {"times": 2}, "reason": "You have bought this 2 times"}


def test_every_shipped_campaign_blend_gets_full_emails(build_shop, product):
    rng = np.random.default_rng(3)
    skus = [p["sku"] for p in catalogue(product)]
    purchases = [(int(c), skus[int(rng.integers(len(skus)))], f"2024-0{int(rng.integers(1, 6))}-1{int(rng.integers(0, 9))}")
                 for c in rng.integers(1, 60, 600)]
    recommender = fit_recommender(build_shop(catalogue(product), purchases, extra_customers=(999,)))
    campaigns = yaml.safe_load((REPO / "config" / "campaigns.yaml").read_text())["campaigns"]
    specs = {c["id"]: RecommendationSpec.model_validate(c["recommendations"])
             for c in campaigns if c.get("recommendations")}
    assert specs, "config/campaigns.yaml has no recommendations blocks"
    ids = list(range(1, 60)) + [999]
    for campaign_id, campaign_spec in specs.items():
        out = recommender.recommend(ids, campaign_spec)
        for recs in out.values():
            assert len(recs) == campaign_spec.total_slots, campaign_id
            assert all(r.reason for r in recs)


def test_ease_matches_the_closed_form_on_a_tiny_matrix():
    x = sp.csr_matrix(np.array([[1, 1, 0], [1, 0, 1], [0, 1, 1], [1, 1, 1]], dtype=np.float32))
    items, weights = fit_ease(x, lam=1.0, max_items=3)
    g = x.toarray().T @ x.toarray() + np.eye(3)
    p = np.linalg.inv(g)
    expected = -p / np.diag(p)[None, :]
    np.fill_diagonal(expected, 0.0)
    assert items.tolist() == [0, 1, 2]
    np.testing.assert_allclose(weights, expected, rtol=1e-5, atol=1e-6)


def test_cosine_neighbours_keep_the_k_most_similar_per_item():
    # item 0 co-occurs with 1 twice and with 2 once
    x = sp.csr_matrix(np.array([[1, 1, 0], [1, 1, 0], [1, 0, 1]], dtype=np.float32))
    sim = cosine_neighbours(item_gram(x), k=1).toarray()
    # cos(0,1) = 2 / sqrt(3 × 2); cos(0,2) = 1 / sqrt(3 × 1); item 0's single neighbour is item 1
    assert sim[1, 0] == pytest.approx(2 / np.sqrt(6)) and sim[2, 0] == 0.0
    assert sim[0, 2] == pytest.approx(1 / np.sqrt(3))   # item 2's best neighbour is item 0
    assert np.all(np.diag(sim) == 0)


def test_trending_prefers_growing_products_over_steady_ones(build_shop, product):
    # T1: bought steadily over four months; M1: few buyers before, many in the last 30 days
    steady = [(c, "T1", f"2024-0{m}-15") for c in CROWD for m in (2, 3, 4, 5)]
    rising = [(c, "M1", "2024-05-20") for c in CROWD] + [(100, "M1", "2024-03-01")]
    recs = fit_recommender(build_shop(catalogue(product), steady + rising, extra_customers=(1,))).recommend(
        [1], spec(("trending", 1), fallbacks=[]))[1]
    assert [r.sku for r in recs] == ["M1"]
    assert recs[0].reason_code == "trending" and recs[0].reason == "Trending this month"
