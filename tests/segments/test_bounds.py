"""Values at the parse-time bounds (lojal.segments.model) evaluate without error on a run: what
`lojal check` accepts never stops a night; one step past a bound is a located problem."""

from __future__ import annotations

from datetime import date

import pytest

from lojal.features import compute_features
from lojal.segments import evaluate_segments
from lojal.segments.loader import SegmentSet
from lojal.segments.model import SegmentParser
from lojal.yamlfile import parse_yaml

from segment_shop import LOYALTY, customer, shop

RUN = date(2024, 6, 15)
AT_THE_BOUNDS = [
    "last_order_at: {gte: 100 years ago}",
    "last_order_at: {lte: in 36500 days}",
    "last_order_at: {gt: 1200 months ago}",
    "first_order_at: {between: [1900-01-01, 2199-12-31]}",
    "ordered_days_ago: 36500",
    "total_spend: {lt: 1000000000000000}",
    "bought: {category: Coffee, within_days: 3650}",
]
PAST_THE_BOUNDS = {
    "last_order_at: {gte: 101 years ago}": "date '101 years ago' for 'last_order_at' is too far from the run date: "
                                          "use at most 100 years",
    "last_order_at: {lte: in 5215 weeks}": "date 'in 5215 weeks' for 'last_order_at' is too far from the run date: "
                                          "use at most 5214 weeks (100 years)",
    "ordered_days_ago: 36501": "ordered_days_ago 36501 is too far back: use at most 36500 days (100 years)",
    "total_spend: {lt: -1.0e+16}": "'total_spend': -1e+16 is out of range: use a number between -1e+15 and 1e+15",
}


def _parse(where: str):
    parser = SegmentParser(parse_yaml(f"name: s\ndescription: test\nwhere:\n  {where}\n", "segments/s.yaml"))
    return parser.segment("s"), [p.message for p in parser.problems]


@pytest.mark.parametrize("where", AT_THE_BOUNDS)
def test_values_at_the_bounds_run(where):
    segment, problems = _parse(where)
    assert problems == []
    data = shop(RUN, [customer(1), customer(2)], [(1, 1, "2024-06-10 12:00", [("COF-1", 1, 100.0)])])
    result = evaluate_segments(SegmentSet({"s": segment}), compute_features(data, LOYALTY), data)
    assert list(result.columns) == ["s"] and len(result) == 2


@pytest.mark.parametrize("where", list(PAST_THE_BOUNDS))
def test_one_step_past_a_bound_is_a_problem(where):
    segment, problems = _parse(where)
    assert segment is None and problems == [PAST_THE_BOUNDS[where]]
