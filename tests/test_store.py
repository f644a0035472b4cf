"""The store on SQLite and PostgreSQL: schema, sample shop round trip, the as-of cut."""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd
import pytest

from lojal.errors import StoreError
from lojal.sample import generate_shop
from lojal.sample.store import write_sample_shop
from lojal.store import connect, load_shop_data

UNTIL = date(2026, 11, 24)


@pytest.fixture(scope="module")
def small_shop():
    return generate_shop(300, seed=3, until=UNTIL)


def test_sample_shop_is_deterministic_and_realistic(small_shop):
    again = generate_shop(300, seed=3, until=UNTIL)
    pd.testing.assert_frame_equal(small_shop.orders, again.orders)
    pd.testing.assert_frame_equal(small_shop.lines, again.lines)
    other = generate_shop(300, seed=4, until=UNTIL)
    assert not small_shop.orders["placed_at"].equals(other.orders["placed_at"])

    customers = small_shop.customers
    assert set(customers["locale"]) == {"en", "nb", "sv", "da"}
    assert customers["first_name"].str.contains("[æøåÆØÅäöÄÖ]").any()
    assert 0.7 < customers["consent_email"].mean() < 0.95
    orders = small_shop.orders
    assert orders["placed_at"].max() < pd.Timestamp(UNTIL)
    assert orders["placed_at"].min() >= pd.Timestamp(UNTIL - timedelta(days=731))
    # power-law popularity: the most sold product sells far more than the median one
    per_sku = small_shop.lines.groupby("sku")["quantity"].sum()
    assert per_sku.max() > 5 * per_sku.median()
    # consumables are re-bought: some customer bought the same sku in 3+ orders
    lines = small_shop.lines.merge(orders, on="order_id")
    assert lines.groupby(["customer_id", "sku"]).size().max() >= 3


def test_round_trip_and_as_of_cut(database_url, small_shop):
    engine = connect(database_url)
    counts = write_sample_shop(engine, small_shop, replace=False)
    assert counts["orders"] == len(small_shop.orders)

    data = load_shop_data(engine, UNTIL)
    assert len(data.orders) == len(small_shop.orders)
    assert len(data.lines) == len(small_shop.lines)
    assert data.suppressed_emails == frozenset(small_shop.suppressions["email"])
    assert data.orders["placed_at"].dtype == "datetime64[ns]"
    assert set(data.lines.columns) >= {"customer_id", "placed_at", "category", "amount"}

    past = load_shop_data(engine, UNTIL - timedelta(days=30))
    cutoff = pd.Timestamp(UNTIL - timedelta(days=30))
    assert (past.orders["placed_at"] < cutoff).all()
    assert len(past.orders) == int((small_shop.orders["placed_at"] < cutoff).sum())
    assert (past.customers["created_at"] < cutoff).all()
    engine.dispose()


def test_refuses_to_mix_sample_with_existing_data(database_url, small_shop):
    engine = connect(database_url)
    write_sample_shop(engine, small_shop, replace=False)
    with pytest.raises(StoreError, match="--replace"):
        write_sample_shop(engine, small_shop, replace=False)
    write_sample_shop(engine, small_shop, replace=True)
    assert len(load_shop_data(engine, UNTIL).customers) == len(small_shop.customers)
    engine.dispose()


def test_empty_store_is_a_clear_error(tmp_path):
    with pytest.raises(StoreError, match="lojal sample-data"):
        load_shop_data(connect(f"sqlite:///{tmp_path / 'empty.db'}"), UNTIL)
