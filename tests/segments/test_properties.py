"""Property tests: not / all / any compose like complement / intersection / union on random data,
and every leaf agrees with a plain per-customer Python reference."""

from __future__ import annotations

import math

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from lojal.segments.evaluate import Context, condition_mask
from lojal.segments.loader import SegmentSet
from lojal.segments.model import SegmentParser
from lojal.store.shopdata import ShopData
from lojal.yamlfile import YamlDocument

AS_OF = pd.Timestamp("2024-06-15")
NUMBER_OPS = ["eq", "ne", "lt", "lte", "gt", "gte"]

rows = st.lists(st.tuples(st.one_of(st.none(), st.integers(0, 12)),           # days_since_last_order
                          st.integers(0, 6),                                    # order_count
                          st.sampled_from([None, "NO", "SE", "DK", "FI"]),      # country
                          st.booleans()),                                       # tier_upgraded
                max_size=30)
numbers = st.integers(0, 12)
leaves = st.one_of(
    st.builds(lambda op, v: {"days_since_last_order": {op: v}}, st.sampled_from(NUMBER_OPS), numbers),
    st.builds(lambda op, v: {"order_count": {op: v}}, st.sampled_from(NUMBER_OPS), numbers),
    st.builds(lambda a, b: {"days_since_last_order": {"between": sorted([a, b])}}, numbers, numbers),
    st.builds(lambda v: {"order_count": {"in": v}}, st.lists(numbers, min_size=1, max_size=3)),
    st.builds(lambda v: {"days_since_last_order": {"not_in": v}}, st.lists(numbers, min_size=1, max_size=3)),
    st.builds(lambda v: {"days_since_last_order": {"is_null": v}}, st.booleans()),
    st.builds(lambda op, v: {"country": {op: v}}, st.sampled_from(["eq", "ne", "contains"]),
              st.sampled_from(["NO", "SE", "DK", "E"])),
    st.builds(lambda v: {"country": {"in": v}}, st.lists(st.sampled_from(["NO", "SE", "DK"]), min_size=1)),
    st.builds(lambda v: {"tier_upgraded": v}, st.booleans()),
)
conditions = st.recursive(
    leaves,
    lambda inner: st.one_of(st.builds(lambda cs: {"all": cs}, st.lists(inner, min_size=1, max_size=3)),
                            st.builds(lambda cs: {"any": cs}, st.lists(inner, min_size=1, max_size=3)),
                            st.builds(lambda c: {"not": c}, inner)),
    max_leaves=8)


def context(data_rows) -> Context:
    index = pd.Index(range(1, len(data_rows) + 1), name="customer_id")
    features = pd.DataFrame({
        "days_since_last_order": pd.Series([math.nan if r[0] is None else float(r[0]) for r in data_rows], dtype=float),
        "order_count": pd.Series([r[1] for r in data_rows], dtype="int64"),
        "country": pd.Series([r[2] for r in data_rows], dtype="str"),
        "tier_upgraded": pd.Series([r[3] for r in data_rows], dtype=bool),
    }).set_axis(index)
    empty = pd.DataFrame()
    data = ShopData(AS_OF, pd.DataFrame(index=index), empty, empty, empty)
    return Context(features, data, SegmentSet({}))


def members(condition: dict, ctx: Context) -> set[int]:
    parser = SegmentParser(YamlDocument("segments/p.yaml", condition))
    parsed = parser.condition(condition, ())
    assert parsed is not None, parser.problems
    return set(ctx.features.index[condition_mask(parsed, ctx)])


def reference(leaf: dict, row: dict) -> bool:
    """One customer, one leaf, in plain Python: missing values never match."""
    (feature, test), = leaf.items()
    value = row[feature]
    if not isinstance(test, dict):
        test = {"eq": test}
    (op, operand), = test.items()
    missing = value is None or (isinstance(value, float) and math.isnan(value))
    if op == "is_null":
        return missing == operand
    if missing:
        return False
    return {"eq": lambda: value == operand, "ne": lambda: value != operand, "lt": lambda: value < operand,
            "lte": lambda: value <= operand, "gt": lambda: value > operand, "gte": lambda: value >= operand,
            "between": lambda: operand[0] <= value <= operand[1], "in": lambda: value in operand,
            "not_in": lambda: value not in operand, "contains": lambda: operand in value}[op]()


@settings(max_examples=150, deadline=None)
@given(rows, conditions)
def test_not_is_the_complement(data_rows, condition):
    ctx = context(data_rows)
    assert members({"not": condition}, ctx) == set(ctx.features.index) - members(condition, ctx)


@settings(max_examples=150, deadline=None)
@given(rows, st.lists(conditions, min_size=1, max_size=4))
def test_all_is_the_intersection_and_any_the_union(data_rows, parts):
    ctx = context(data_rows)
    sets = [members(c, ctx) for c in parts]
    assert members({"all": parts}, ctx) == set.intersection(*sets)
    assert members({"any": parts}, ctx) == set.union(*sets)


@settings(max_examples=100, deadline=None)
@given(rows, conditions, conditions)
def test_de_morgan(data_rows, a, b):
    ctx = context(data_rows)
    assert members({"not": {"any": [a, b]}}, ctx) == members({"all": [{"not": a}, {"not": b}]}, ctx)
    assert members({"not": {"all": [a, b]}}, ctx) == members({"any": [{"not": a}, {"not": b}]}, ctx)


@settings(max_examples=200, deadline=None)
@given(rows, leaves)
def test_each_leaf_matches_a_per_customer_reference(data_rows, leaf):
    ctx = context(data_rows)
    records = ctx.features.astype(object).where(ctx.features.notna(), None).to_dict("index")
    expected = {cid for cid, row in records.items() if reference(leaf, row)}
    assert members(leaf, ctx) == expected
