"""Customer features computed from hand-made shops: values worked out by hand in the comments."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from lojal.features import FEATURES, compute_features
from lojal.features.rfm import GRID, NO_ORDERS, RFM_GROUPS, quintile_score, rfm_group

from segment_shop import LOYALTY, customer, random_shop, shop

RUN = date(2024, 6, 15)


def history_shop(run_date: date = RUN):
    return shop(run_date, [customer(1, created_at="2024-01-01"), customer(2)], [
        (11, 1, "2024-06-01 08:00", [("COF-2", 1, 120.0)]),                      # 120
        (10, 1, "2024-06-14 23:59", [("COF-1", 2, 100.0), ("TEA-1", 1, 80.0)]),  # 280
        (12, 1, "2024-06-15 00:00", [("MUG-1", 1, 150.0)]),                      # on the run date: not yet seen
    ])


def test_order_history_of_a_buyer():
    c = compute_features(history_shop(), LOYALTY).loc[1]
    assert c["last_order_id"] == 10
    assert c["last_order_at"] == pd.Timestamp("2024-06-14 23:59")
    assert c["first_order_at"] == pd.Timestamp("2024-06-01 08:00")
    assert c["days_since_last_order"] == 1.0      # yesterday
    assert c["days_since_first_order"] == 14.0
    assert c["order_count"] == 2
    assert c["last_order_total"] == 280.0
    assert c["total_spend"] == 400.0
    assert c["average_order_value"] == 200.0
    assert c["distinct_products"] == 3
    assert c["distinct_categories"] == 2
    assert c["favourite_category"] == "Coffee"    # 200 + 120 against 80 on tea
    assert c["tenure_days"] == 166.0              # 2024-01-01 to 2024-06-15
    assert c["mean_days_between_orders"] == 13.0  # 1 June to 14 June
    assert c["expected_next_order_at"] == pd.Timestamp("2024-06-27")
    assert c["days_until_next_order"] == 12.0


def test_customer_without_orders_has_a_row_with_empty_history():
    features = compute_features(history_shop(), LOYALTY)
    c = features.loc[2]
    assert pd.isna(c["last_order_id"]) and pd.isna(c["last_order_at"]) and pd.isna(c["days_since_last_order"])
    assert c["order_count"] == 0 and c["total_spend"] == 0.0 and pd.isna(c["average_order_value"])
    assert pd.isna(c["favourite_category"]) and pd.isna(c["recency_score"])
    assert c["rfm_group"] == NO_ORDERS and c["tier"] == "Bronze" and c["previous_tier"] == "Bronze"


def test_contract_columns_and_types():
    features = compute_features(history_shop(), LOYALTY)
    assert list(features.columns) == list(FEATURES)
    assert list(features.index) == [1, 2] and features.index.name == "customer_id"
    assert str(features["last_order_id"].dtype) == "Int64"
    assert features["last_order_at"].dtype == "datetime64[ns]"
    assert features["days_since_last_order"].dtype == float
    assert features["tier"].dtype == "str" and features["previous_tier"].dtype == "str"


def test_a_run_for_a_past_date_sees_the_world_as_it_was():
    c = compute_features(history_shop(date(2024, 6, 5)), LOYALTY).loc[1]
    assert c["last_order_id"] == 11 and c["order_count"] == 1 and c["days_since_last_order"] == 4.0
    assert c["tenure_days"] == 156.0


def test_favourite_category_tie_goes_to_the_alphabetically_first():
    data = shop(RUN, [customer(1)], [(1, 1, "2024-05-01", [("TEA-1", 1, 100.0), ("COF-1", 1, 100.0)])])
    assert compute_features(data, LOYALTY).loc[1, "favourite_category"] == "Coffee"


def test_spend_12m_counts_the_last_365_days():
    # 2024-06-15 minus 365 days is 2023-06-16 00:00: included; a minute earlier is not.
    data = shop(RUN, [customer(1)], [(1, 1, "2023-06-16 00:00", [("MUG-1", 1, 150.0)]),
                                     (2, 1, "2023-06-15 23:59", [("MUG-1", 1, 1000.0)])])
    c = compute_features(data, LOYALTY).loc[1]
    assert c["spend_12m"] == 150.0 and c["order_count_12m"] == 1 and c["total_spend"] == 1150.0


def test_tier_previous_tier_and_upgrade():
    data = shop(RUN, [customer(1), customer(2), customer(3)], [
        (1, 1, "2024-03-01", [("MUG-1", 1, 2900.0)]), (2, 1, "2024-06-14 12:00", [("MUG-1", 1, 200.0)]),
        (3, 2, "2024-06-13 12:00", [("MUG-1", 1, 3100.0)]),
        (4, 3, "2023-06-15 10:00", [("MUG-1", 1, 9000.0)]),  # leaves the 12-month window tonight
    ])
    f = compute_features(data, LOYALTY)
    assert f.loc[1, ["tier", "previous_tier", "tier_upgraded"]].tolist() == ["Silver", "Bronze", True]
    assert f.loc[2, ["tier", "previous_tier", "tier_upgraded"]].tolist() == ["Silver", "Silver", False]
    assert f.loc[3, ["tier", "previous_tier", "tier_upgraded"]].tolist() == ["Bronze", "Gold", False]
    assert f.loc[3, ["tier_rank", "previous_tier_rank"]].tolist() == [0, 2]


def test_previous_tier_is_measured_at_the_last_completed_run():
    # Customer 2 crossed Silver three nights ago, customer 3 twenty nights ago.
    data = shop(RUN, [customer(1), customer(2), customer(3)], [
        (1, 2, "2024-06-12 12:00", [("MUG-1", 1, 3100.0)]),
        (2, 3, "2024-05-26 12:00", [("MUG-1", 1, 3100.0)]),
    ])
    upgraded = lambda previous_run: compute_features(data, LOYALTY, previous_run)["tier_upgraded"].to_dict()  # noqa: E731
    assert upgraded(None) == {1: False, 2: False, 3: False}                  # no earlier run: since last night
    assert upgraded(RUN - timedelta(days=4)) == {1: False, 2: True, 3: False}  # two nights were missed
    assert upgraded(RUN - timedelta(days=30)) == {1: False, 2: True, 3: False}  # caught up 7 days at most
    assert upgraded(RUN) == {1: False, 2: False, 3: False}                    # a re-run of tonight
    wide = LOYALTY.model_copy(update={"upgrade_catch_up_days": 30})
    assert compute_features(data, wide, RUN - timedelta(days=30))["tier_upgraded"].to_dict() == {1: False, 2: True, 3: True}


def test_quintile_scores_split_by_fifths_and_ties_share_a_score():
    distinct = quintile_score(pd.Series(np.arange(1.0, 11.0)))
    assert distinct.tolist() == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    # six customers with one order: nobody is strictly below them -> 1; the value 2 has 6 of 10 below -> 4.
    tied = quintile_score(pd.Series([1.0] * 6 + [2.0, 3.0, 4.0, 5.0]))
    assert tied.tolist() == [1] * 6 + [4, 4, 5, 5]
    assert quintile_score(pd.Series([np.nan, 3.0])).isna().tolist() == [True, False]


def test_rfm_group_grid():
    cases = {(5, 5, 5): "Champions", (1, 1, 1): "Lost", (2, 1, 2): "Hibernating", (1, 5, 5): "Cannot lose them",
             (5, 1, 1): "New", (4, 1, 1): "Promising", (3, 3, 3): "Need attention", (3, 1, 2): "About to sleep",
             (4, 4, 5): "Loyal", (5, 2, 3): "Potential loyalist", (1, 3, 3): "At risk"}
    r, f, m = (pd.Series([k[i] for k in cases], dtype="Int64") for i in range(3))
    assert rfm_group(r, f, m).tolist() == list(cases.values())
    assert sorted({g for row in GRID for g in row}) == sorted(RFM_GROUPS)


def test_recent_frequent_big_spender_is_a_champion():
    data = random_shop(60, 200, RUN, seed=3)
    f = compute_features(data, LOYALTY)
    best = f["recency_score"].eq(5) & f["frequency_score"].eq(5) & f["monetary_score"].eq(5)
    assert best.any()
    assert set(f.loc[best, "rfm_group"]) == {"Champions"}
    buyers = f["order_count"] > 0
    assert f.loc[buyers, "recency_score"].between(1, 5).all()
    assert (f.loc[~buyers, "rfm_group"] == NO_ORDERS).all()


def test_predictions_for_buyers_only():
    f = compute_features(random_shop(80, 300, RUN, seed=5), LOYALTY)
    buyers = f["order_count"] > 0
    assert f.loc[buyers, "p_alive"].between(0, 1).all()
    assert (f.loc[buyers, "expected_purchases_90d"] >= 0).all()
    assert f.loc[~buyers, ["p_alive", "expected_purchases_90d"]].isna().all().all()


def test_docs_describe_every_feature_as_the_registry_does():
    docs = (Path(__file__).resolve().parents[2] / "docs" / "segments.md").read_text(encoding="utf-8")
    for f in FEATURES.values():
        assert f"| `{f.name}` | {f.kind} | {f.source} | {f.description} |" in docs, f.name


def test_a_shop_without_orders_still_has_a_row_per_customer():
    f = compute_features(shop(RUN, [customer(1), customer(2)], []), LOYALTY)
    assert list(f.index) == [1, 2]
    assert f["order_count"].tolist() == [0, 0] and f["tier"].tolist() == ["Bronze", "Bronze"]
    assert f["rfm_group"].tolist() == [NO_ORDERS, NO_ORDERS] and f["p_alive"].isna().all()


def test_rendering_features_are_compute_features_columns_without_fitting_a_model():
    from lojal.features import RENDERING_FEATURES, rendering_features

    data = random_shop(400, 1500, RUN, seed=5)
    full = compute_features(data, LOYALTY, previous_run=RUN - timedelta(days=3))
    alone = rendering_features(data, LOYALTY, previous_run=RUN - timedelta(days=3))
    assert list(alone.columns) == list(RENDERING_FEATURES) and alone["tier"].notna().any()
    assert alone["order_count"].gt(1).any() and alone["last_order_id"].notna().any()
    pd.testing.assert_frame_equal(alone, full[list(RENDERING_FEATURES)])
