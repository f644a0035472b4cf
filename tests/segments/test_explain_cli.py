"""`segments explain` on a hand-made shop, and the list/show/explain commands on a real SQLite store."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lojal.audience import marketable_mask
from lojal.errors import LojalError
from lojal.features import compute_features
from lojal.paths import Paths
from lojal.segments import evaluate_segments, explain, load_segments
from lojal.segments.cli import app
from lojal.store import connect, init_schema, load_shop_data
from lojal.store.write import insert_frame
from lojal.store import schema

from segment_shop import LOYALTY, customer, shop

RUN = date(2024, 6, 15)
REPO = Path(__file__).resolve().parents[2]


def vip_shop():
    return shop(RUN, [customer(1), customer(2, consent=False)], [
        (1, 1, "2024-01-10 10:00", [("MUG-1", 1, 9000.0)]),
        (2, 2, "2024-06-14 10:00", [("COF-1", 1, 100.0)]),
    ])


def test_explain_walks_every_condition_with_the_customers_value():
    data = vip_shop()
    features = compute_features(data, LOYALTY)
    result = explain(load_segments(Paths.resolve(REPO)), "lapsed_90_180", 1, features, data)
    assert result.member is True and result.path == "segments/lapsed_90_180.yaml"
    assert [(s.depth, s.condition, s.value, s.held, s.line) for s in result.steps] == [
        (0, "days_since_last_order between 90 and 180", "157", True, 4)]     # 10 January to 15 June


def test_explain_nested_conditions_and_behaviour():
    data = vip_shop()
    features = compute_features(data, LOYALTY)
    result = explain(load_segments(Paths.resolve(REPO)), "survey_due", 2, features, data)
    assert result.member is False
    assert [(s.depth, s.condition, s.value, s.held) for s in result.steps] == [
        (0, "all of:", "", False),
        (1, "ordered 14 days ago (2024-06-01)", "no order that day; last order 2024-06-14 10:00:00", False),
        (1, "days_since_last_order eq 14", "1", False),
    ]


def test_explain_unknown_customer_or_segment_is_a_clear_error():
    data = vip_shop()
    features = compute_features(data, LOYALTY)
    segments = load_segments(Paths.resolve(REPO))
    with pytest.raises(LojalError, match="no customer 99 as of 2024-06-15"):
        explain(segments, "lost_365", 99, features, data)
    with pytest.raises(LojalError, match="no segment 'lost'"):
        explain(segments, "lost", 1, features, data)


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A project folder with the shipped config and segments, and the vip shop in its SQLite store."""
    shutil.copytree(REPO / "config", tmp_path / "config")
    shutil.copytree(REPO / "segments", tmp_path / "segments")
    monkeypatch.delenv("LOJAL_HOME", raising=False)
    monkeypatch.delenv("LOJAL_DATABASE_URL", raising=False)
    paths = Paths.resolve(tmp_path)
    paths.state.mkdir(parents=True)
    engine = connect(paths.database_url)
    init_schema(engine)
    data = vip_shop()
    with engine.begin() as conn:
        insert_frame(conn, schema.customers, data.customers.reset_index())
        insert_frame(conn, schema.products, data.products.reset_index())
        insert_frame(conn, schema.orders, data.orders[["order_id", "customer_id", "placed_at", "currency"]])
        insert_frame(conn, schema.order_lines, data.lines[["order_id", "line_no", "sku", "quantity", "unit_price"]])
    return tmp_path


def run(*args: str):
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})
    return result.exit_code, result.output


def test_list_shows_matching_and_marketable_counts(project):
    code, out = run("list", "--project", str(project), "--date", "2024-06-15")
    assert code == 0, out
    lines = {line.split("│")[1].strip(): line for line in out.splitlines() if line.count("│") >= 4}
    # customer 2 ordered yesterday but has no consent: matches, is not marketable.
    assert [c.strip() for c in lines["post_purchase"].split("│")[3:5]] == ["1", "0"]
    assert [c.strip() for c in lines["lapsed_90_180"].split("│")[3:5]] == ["1", "1"]


def test_show_and_explain_commands(project):
    code, out = run("show", "post_purchase", "--project", str(project), "--date", "2024-06-15")
    assert code == 0, out
    assert "1 matching, 0 marketable on 2024-06-15" in out and "no: no e-mail marketing consent" in out
    code, out = run("explain", "lapsed_90_180", "--customer", "1", "--project", str(project), "--date", "2024-06-15")
    assert code == 0, out
    assert "customer 1 is IN segment lapsed_90_180 on 2024-06-15" in out
    assert "days_since_last_order between 90 and 180" in out and "157" in out
    code, out = run("explain", "lapsed_90_180", "--customer", "7", "--project", str(project), "--date", "2024-06-15")
    assert code == 1 and "no customer 7 as of 2024-06-15" in out


def test_cli_counts_agree_with_the_library(project):
    paths = Paths.resolve(project)
    data = load_shop_data(connect(paths.database_url), RUN)
    membership = evaluate_segments(load_segments(paths), compute_features(data, LOYALTY), data)
    assert int((membership["post_purchase"] & marketable_mask(data)).sum()) == 0
    assert int(membership["post_purchase"].sum()) == 1
