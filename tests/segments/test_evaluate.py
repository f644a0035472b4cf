"""Segment conditions evaluated on hand-made shops, and the shipped segments/*.yaml."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from lojal.features import compute_features
from lojal.paths import Paths
from lojal.segments import evaluate_segments, load_segments
from lojal.segments.loader import SegmentSet
from lojal.segments.model import SegmentParser
from lojal.yamlfile import parse_yaml

from segment_shop import LOYALTY, customer, random_shop, shop

RUN = date(2024, 6, 15)
REPO = Path(__file__).resolve().parents[2]


def segment_set(**conditions: str) -> SegmentSet:
    """Segments from `name=condition YAML` (indented under where:)."""
    segments = {}
    for name, where in conditions.items():
        text = f"name: {name}\ndescription: test\nwhere:\n" + "\n".join("  " + line for line in where.splitlines())
        parser = SegmentParser(parse_yaml(text, f"segments/{name}.yaml"))
        segment = parser.segment(name)
        assert not parser.problems, parser.problems
        segments[name] = segment
    return SegmentSet(segments)


@pytest.fixture(scope="module")
def small():
    data = shop(RUN, [customer(1, country="NO", birthday="1990-06-15"), customer(2, country="SE"),
                      customer(3, country="DK"), customer(4, country="NO", birthday="1988-02-29")], [
        (1, 1, "2024-06-14 09:00", [("COF-1", 1, 100.0)]),
        (2, 1, "2024-05-01 09:00", [("TEA-1", 1, 80.0)]),
        (3, 2, "2024-03-01 09:00", [("MUG-1", 3, 150.0)]),
        (4, 3, "2024-06-01 09:00", [("COF-2", 1, 120.0)]),
    ])
    return data, compute_features(data, LOYALTY)


def members(small, where: str) -> list[int]:
    data, features = small
    result = evaluate_segments(segment_set(s=where), features, data)["s"]
    return sorted(result[result].index)


@pytest.mark.parametrize("where, expected", [
    ("order_count: 2", [1]),
    ("order_count: {ne: 2}", [2, 3, 4]),
    ("days_since_last_order: {ne: 1}", [2, 3]),             # customer 4 never ordered: empty never matches
    ("order_count: {gte: 1, lt: 2}", [2, 3]),
    ("days_since_last_order: {between: [1, 14]}", [1, 3]),
    ("days_since_last_order: {is_null: true}", [4]),
    ("country: ['NO', SE]", [1, 2, 4]),
    ("country: {not_in: ['NO']}", [2, 3]),
    ("favourite_category: {contains: ffe}", [1, 3]),        # Coffee (customer 1: 100 coffee vs 80 tea)
    ("favourite_category: {is_null: false}", [1, 2, 3]),
    ("last_order_at: {gte: 14 days ago}", [1, 3]),          # 2024-06-01 or later
    ("last_order_at: {lt: 2 weeks ago}", [2]),
    ("last_order_at: {eq: yesterday}", [1]),
    ("first_order_at: {between: [2024-03-01, 2024-05-01]}", [1, 2]),
    ("last_order_at: {gt: 4 months ago}", [1, 2, 3]),       # after 2024-02-15
    ("tier_upgraded: false", [1, 2, 3, 4]),
    ("not: {days_since_last_order: {ne: 1}}", [1, 4]),      # not is the exact complement: 4 is back
    ("any: [{order_count: 2}, {country: DK}]", [1, 3]),
    ("all: [{country: 'NO'}, {order_count: {gte: 1}}]", [1]),
])
def test_operators(small, where, expected):
    assert members(small, where) == expected


@pytest.mark.parametrize("where, expected", [
    ("bought: {category: Coffee, within_days: 30}", [1, 3]),
    ("bought: {category: Coffee, within_days: 1}", [1]),     # only yesterday counts
    ("bought: {sku: [TEA-1, MUG-1]}", [1, 2]),
    ("bought: {sku: TEA-1, within_days: 30}", []),           # 2024-05-01 is 45 days ago
    ("ordered_days_ago: 1", [1]),
    ("ordered_days_ago: 14", [3]),
    ("ordered_days_ago: 45", [1]),                           # any order that day, not only the last
    ("birthday_today: true", [1]),
    ("birthday_today: false", [2, 3, 4]),
])
def test_behavioural_conditions(small, where, expected):
    assert members(small, where) == expected


def test_leap_day_birthdays_are_celebrated_on_28_february():
    customers = [customer(1, birthday="1988-02-29"), customer(2, birthday="1990-02-28"), customer(3, birthday="1990-03-01")]
    sets = segment_set(b="birthday_today: true")
    for run, expected in [(date(2023, 2, 28), [1, 2]), (date(2024, 2, 28), [2]), (date(2024, 2, 29), [1])]:
        data = shop(run, customers, [])
        result = evaluate_segments(sets, compute_features(data, LOYALTY), data)["b"]
        assert sorted(result[result].index) == expected, run


def test_segment_references(small):
    data, features = small
    sets = segment_set(buyers="order_count: {gte: 1}",
                       coffee="all: [{in_segment: buyers}, {bought: {category: Coffee}}]",
                       others="all: [{in_segment: buyers}, {not_in_segment: coffee}]")
    result = evaluate_segments(sets, features, data)
    assert sorted(result.index[result["coffee"]]) == [1, 3]
    assert sorted(result.index[result["others"]]) == [2]
    assert list(result.columns) == ["buyers", "coffee", "others"] and (result.dtypes == bool).all()


def test_relative_dates_follow_the_run_date():
    sets = segment_set(recent="last_order_at: {gte: 7 days ago}")
    orders = [(1, 1, "2024-06-10 12:00", [("MUG-1", 1, 150.0)])]
    for run, expected in [(date(2024, 6, 17), [1]), (date(2024, 6, 18), [])]:   # 10 June is 7, then 8 days ago
        data = shop(run, [customer(1)], orders)
        result = evaluate_segments(sets, compute_features(data, LOYALTY), data)["recent"]
        assert sorted(result[result].index) == expected, run


def test_shipped_segments_select_the_customers_they_describe():
    people = [customer(i, birthday="1990-06-15" if i == 7 else None) for i in range(1, 9)]
    data = shop(RUN, people, [
        (1, 1, "2024-06-10 10:00", [("COF-1", 1, 100.0)]),                                   # new customer
        (2, 2, "2023-01-01 10:00", [("COF-1", 1, 100.0)]), (3, 2, "2024-06-14 10:00", [("TEA-1", 1, 80.0)]),
        (4, 3, "2024-06-01 10:00", [("TEA-1", 1, 80.0)]),                                     # 14 days ago
        (5, 4, "2024-04-17 10:00", [("COF-2", 1, 120.0)]), (6, 4, "2024-05-17 10:00", [("COF-2", 1, 120.0)]),
        (7, 5, "2024-02-01 10:00", [("MUG-1", 1, 150.0)]),                                    # 135 days ago
        (8, 6, "2023-05-01 10:00", [("MUG-1", 1, 150.0)]),                                    # lost
        (9, 8, "2024-03-01 10:00", [("MUG-1", 1, 2900.0)]), (10, 8, "2024-06-14 18:00", [("MUG-1", 1, 200.0)]),
    ])
    features = compute_features(data, LOYALTY)
    result = evaluate_segments(load_segments(Paths.resolve(REPO)), features, data)
    chosen = {name: sorted(result.index[result[name]]) for name in result.columns}
    assert chosen["new_customer"] == [1]
    assert chosen["post_purchase"] == [2, 8]
    assert chosen["survey_due"] == [3]
    assert chosen["replenishment_due"] == [4]      # every 30 days, last 17 May: due 16 June
    assert chosen["lapsed_90_180"] == [5]
    assert chosen["lost_365"] == [6]
    assert chosen["birthday_today"] == [7]
    assert chosen["tier_upgraded"] == [8]          # 2,900 + 200 yesterday crosses Silver at 3,000


def test_value_based_shipped_segments_match_their_descriptions():
    data = random_shop(400, 3000, RUN, seed=11)
    features = compute_features(data, LOYALTY)
    result = evaluate_segments(load_segments(Paths.resolve(REPO)), features, data)
    f = features
    champions = f["rfm_group"] == "Champions"
    valuable = (f["tier"] == "Gold") | (f["monetary_score"] >= 5).fillna(False)
    fading = f["rfm_group"].isin(["At risk", "Cannot lose them"]) | (f["p_alive"] < 0.5)
    at_risk_vip = valuable & fading & f["days_since_last_order"].between(45, 365)
    assert champions.sum() > 0 and at_risk_vip.sum() > 0
    assert result["champions"].equals(champions.rename("champions"))
    assert result["at_risk_vip"].to_numpy().tolist() == at_risk_vip.to_numpy().tolist()
