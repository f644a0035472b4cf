"""Business rules, each on its own: through `Recommender.recommend` on a tiny shop, and the rule
functions directly."""

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from lojal.reco import RecommendationSpec, fit_recommender
from lojal.reco.rules import Picker, boost_margin, mask_bought_within, price_band_allowed, top_candidates

CROWD = range(100, 110)  # ten other customers who make some products popular


def spec(*slots, **rules) -> RecommendationSpec:
    return RecommendationSpec(slots=[{"strategy": s, "count": n} for s, n in slots], **rules)


def catalogue(product):
    return [product("T1"), product("T2"), product("T3"), product("C1", "Coffee"), product("C2", "Coffee"),
            product("M1", "Mugs", price=100.0),
            product("OUT", in_stock=False), product("NOIMG", image=False), product("FREE", price=0.0)]


def crowd_buys(skus, day="2024-05-10"):
    return [(c, s, day) for c in CROWD for s in skus]


def test_only_sellable_items_even_when_they_are_the_most_popular(build_shop, product):
    shop = build_shop(catalogue(product), crowd_buys(["OUT", "NOIMG", "FREE", "T1", "C1", "M1"]), extra_customers=(1,))
    recs = fit_recommender(shop).recommend([1], spec(("popular", 4), max_per_category=None))[1]
    assert {r.sku for r in recs} == {"T1", "C1", "M1"}


def test_never_the_item_that_triggered_the_email_even_for_repeat(build_shop, product):
    shop = build_shop(catalogue(product), [(1, "T1", "2024-05-01"), (1, "T2", "2024-05-02")])
    recs = fit_recommender(shop).recommend([1], spec(("repeat", 2)), trigger_skus={1: ["T1"]})[1]
    assert "T1" not in {r.sku for r in recs}
    assert recs[0].sku == "T2"


def test_recently_bought_excluded_unless_repeat_strategy(build_shop, product):
    purchases = crowd_buys(["T1", "C1", "M1"]) + [(1, "T1", "2024-05-20")]   # 12 days before 06-01
    recommender = fit_recommender(build_shop(catalogue(product), purchases))
    popular = {r.sku for r in recommender.recommend([1], spec(("popular", 3), exclude_bought_within_days=30))[1]}
    assert "T1" not in popular
    popular_short_window = recommender.recommend([1], spec(("popular", 3), exclude_bought_within_days=10))[1]
    assert "T1" in {r.sku for r in popular_short_window}
    repeat = recommender.recommend([1], spec(("repeat", 1), exclude_bought_within_days=30))[1]
    assert repeat[0].sku == "T1" and repeat[0].strategy == "repeat"


def test_discovery_never_recommends_anything_already_bought(build_shop, product):
    purchases = crowd_buys(["T1", "T2", "C1"]) + [(1, "T1", "2023-01-01")]   # long ago
    recs = fit_recommender(build_shop(catalogue(product), purchases)).recommend(
        [1], spec(("ease", 2), ("co_purchase", 2), exclude_bought_within_days=0, fallbacks=[]))[1]
    assert recs and "T1" not in {r.sku for r in recs}


def test_at_most_n_per_category(build_shop, product):
    shop = build_shop(catalogue(product), crowd_buys(["T1", "T2", "T3", "C1", "C2", "M1"]), extra_customers=(1,))
    recs = fit_recommender(shop).recommend([1], spec(("popular", 4), max_per_category=1))[1]
    categories = [r.category for r in recs]
    assert sorted(categories) == ["Coffee", "Mugs", "Tea"]  # only three categories exist


def test_price_band_around_the_customers_average_price(build_shop, product):
    purchases = crowd_buys(["T1", "C1", "M1"]) + [(1, "T2", "2023-01-01")]  # customer pays 10 on average
    recommender = fit_recommender(build_shop(catalogue(product), purchases))
    banded = recommender.recommend([1], spec(("popular", 3), price_band=0.5, max_per_category=None))[1]
    assert "M1" not in {r.sku for r in banded}           # 100 is outside 5..15
    unbanded = recommender.recommend([1], spec(("popular", 3), max_per_category=None))[1]
    assert "M1" in {r.sku for r in unbanded}


def test_margin_boost_reorders_close_scores(build_shop, product):
    purchases = crowd_buys(["T1", "T2"]) + [(c, "C1", "2024-05-10") for c in list(CROWD)[:9]]
    shop = build_shop(catalogue(product), purchases, extra_customers=(1,))
    # products.margin comes from the store (NaN where the shop does not know it)
    shop.products["margin"] = np.where(shop.products.index == "C1", 0.9, 0.1)
    recommender = fit_recommender(shop)
    plain = recommender.recommend([1], spec(("popular", 1)))[1]
    boosted = recommender.recommend([1], spec(("popular", 1), margin_boost=1.0))[1]
    assert plain[0].sku != "C1" and boosted[0].sku == "C1"


def test_no_duplicates_across_slots(build_shop, product):
    purchases = crowd_buys(["T1", "C1", "T2", "C2"]) + [(1, "T1", "2024-05-01"), (1, "C1", "2024-05-01")]
    recs = fit_recommender(build_shop(catalogue(product), purchases)).recommend(
        [1], spec(("repeat", 2), ("popular", 2), exclude_bought_within_days=0, max_per_category=None))[1]
    skus = [r.sku for r in recs]
    assert sorted(skus[:2]) == ["C1", "T1"] and sorted(skus[2:]) == ["C2", "T2"]


def test_mask_bought_within_counts_days_since_last_purchase():
    scores = np.ones((2, 3), np.float32)
    days_plus_one = sp.csr_matrix(np.array([[1.0, 11.0, 0.0], [0.0, 31.0, 0.0]]))  # bought 0 and 10 days ago; 30
    mask_bought_within(scores, days_plus_one, np.array([0, 1]), days=30)
    assert np.isneginf(scores[0, 0]) and np.isneginf(scores[0, 1]) and scores[1, 1] == 1.0
    mask_bought_within(scores, days_plus_one, np.array([0, 1]), days=None)
    assert np.isneginf(scores[1, 1])


def test_price_band_leaves_customers_without_history_unrestricted():
    allowed = price_band_allowed(np.array([10.0, np.nan]), np.array([5.0, 12.0, 30.0]), band=0.5)
    assert allowed.tolist() == [[True, True, False], [True, True, True]]


def test_picker_caps_categories_and_skips_invalid_scores():
    picker = Picker(np.array([0, 0, 1, -1]), max_per_category=1)
    taken = picker.take(np.array([0, 1, 2, 3]), np.array([4.0, 3.0, 2.0, 1.0]), count=3, strategy="popular")
    assert taken == 3 and picker.items == [0, 2, 3]
    assert Picker(np.zeros(2, int), None).take(np.array([0, 1]), np.array([-np.inf, 1.0]), 2, "x") == 0


def test_top_candidates_sorted_best_first():
    items, scores = top_candidates(np.array([[0.1, 0.9, 0.5, 0.7]], np.float32), 3)
    assert items.tolist() == [[1, 3, 2]] and scores[0].tolist() == pytest.approx([0.9, 0.7, 0.5])


def test_margin_boost_leaves_forbidden_items_forbidden():
    scores = np.array([[1.0, -np.inf]], np.float32)
    boost_margin(scores, np.array([0.5, 0.5]), 1.0)
    assert scores[0, 0] == pytest.approx(1.5) and np.isneginf(scores[0, 1])


@st.composite
def score_blocks(draw):
    rows, cols = draw(st.integers(1, 12)), draw(st.integers(1, 300))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    kind = draw(st.sampled_from(["dense", "sparse", "shared", "ties", "mixed"]))
    if kind == "dense":
        block = rng.random((rows, cols), dtype=np.float32)
    elif kind == "sparse":  # repeat-like: a few positive scores per row
        block = np.where(rng.random((rows, cols)) < 0.03, rng.random((rows, cols)), 0).astype(np.float32)
    elif kind == "shared":  # popular-like: one ranking for everyone
        block = np.tile(rng.random(cols, dtype=np.float32), (rows, 1))
    elif kind == "ties":
        block = rng.integers(0, 3, (rows, cols)).astype(np.float32)
    else:
        block = rng.normal(size=(rows, cols)).astype(np.float32)
    block[rng.random((rows, cols)) < draw(st.sampled_from([0.0, 0.2, 0.9]))] = -np.inf
    return block


@given(score_blocks(), st.integers(1, 80))
@settings(max_examples=300, deadline=None)
def test_top_candidates_match_a_full_sort(block, k):
    items, values = top_candidates(block.copy(), k)
    width = min(k, block.shape[1])
    assert items.shape == values.shape == (len(block), width)
    for row, (got_items, got_values) in enumerate(zip(items, values)):
        expected = np.sort(block[row][block[row] > 0])[::-1][:width]
        found = got_items >= 0
        assert found.sum() == len(expected)
        np.testing.assert_array_equal(got_values[found], expected)              # the best, best first
        np.testing.assert_array_equal(block[row, got_items[found]], got_values[found])
        assert len(set(got_items[found].tolist())) == found.sum()
        kept, kept_values = got_items[found], got_values[found]
        assert all(kept[i] < kept[i + 1] for i in range(len(kept) - 1) if kept_values[i] == kept_values[i + 1])
        assert np.isneginf(got_values[~found]).all() and found[:found.sum()].all()  # padding at the end
