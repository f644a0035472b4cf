"""Schema migrations on SQLite and PostgreSQL: the head is exactly `schema.metadata`, and a store
created before migrations (by `create_all`, no alembic_version) upgrades in place, rows kept."""

from __future__ import annotations

import json
from datetime import date, datetime

import pandas as pd
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import insert, select, text
from typer.testing import CliRunner

import legacy_schema
from lojal.cli import app
from lojal.errors import StoreError
from lojal.ledger import SENT
from lojal.runlog import recent_runs
from lojal.sample import generate_shop
from lojal.store import connect, init_schema, load_shop_data, migrate
from lojal.store.schema import LEDGER_TOAST_TUPLE_TARGET, metadata
from lojal.store.write import insert_frame

UNTIL = date(2026, 11, 24)
runner = CliRunner()


def differences(engine) -> list:
    with engine.connect() as conn:
        return compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata)


def test_the_migrations_head_is_exactly_schema_py(database_url):
    """Fails when a table or column was added to schema.py without a migration (`lojal db revision`)."""
    engine = connect(database_url)
    migrate.upgrade(engine, migrate.BASELINE)  # run every migration, not create_all
    assert migrate.schema_state(engine).kind == "behind"
    before, after = migrate.upgrade(engine)
    assert (before.revision, after.kind, after.revision) == (migrate.BASELINE, "current", migrate.head_revision())
    assert differences(engine) == []
    engine.dispose()


def test_a_new_store_is_created_at_the_head(database_url):
    engine = connect(database_url)
    init_schema(engine)
    assert migrate.schema_state(engine).current
    assert differences(engine) == []
    if engine.dialect.name == "postgresql":  # made_from out of line: delivery's updates copy small rows
        with engine.connect() as conn:
            options = conn.execute(text("SELECT reloptions FROM pg_class WHERE relname = 'send_ledger'")).scalar()
        assert options == [f"toast_tuple_target={LEDGER_TOAST_TUPLE_TARGET}"]
    engine.dispose()


@pytest.fixture(scope="module")
def shop():
    return generate_shop(120, seed=5, until=UNTIL)


def legacy_store(url: str, shop) -> dict:
    """A store exactly as the code before migrations made it, with shop data, ledger and runs."""
    engine = connect(url)
    legacy_schema.metadata.create_all(engine)
    products = shop.products.copy()
    products.loc[products.index[:3], "price"] = [199.9, 12.3456, 0.1]
    assert "sku" in products.columns
    with engine.begin() as conn:
        insert_frame(conn, legacy_schema.customers, shop.customers)
        insert_frame(conn, legacy_schema.products, products)
        insert_frame(conn, legacy_schema.orders, shop.orders)
        insert_frame(conn, legacy_schema.order_lines, shop.lines)
        conn.execute(insert(legacy_schema.send_ledger), [
            {"campaign_id": "win_back", "customer_id": int(cid), "occasion_key": f"lapse:{i}", "run_date": UNTIL,
             "message_id": f"m{i:031d}", "state": SENT, "planned_at": datetime(2026, 11, 24, 1),
             "sent_at": datetime(2026, 11, 24, 1, 5), "attempts": 1} for i, cid in enumerate(shop.customers.index[:40])])
        conn.execute(insert(legacy_schema.runs), [
            {"run_date": UNTIL, "started_at": datetime(2026, 11, 24, 1), "finished_at": datetime(2026, 11, 24, 1, 6),
             "status": "completed", "summary_json": json.dumps([{"campaign_id": "win_back", "delivered": 40, "failed": 0}])}])
    engine.dispose()
    return {"products": products, "customers": len(shop.customers), "lines": len(shop.lines)}


def test_a_store_created_before_migrations_upgrades_in_place(database_url, shop, project, monkeypatch):
    expected = legacy_store(database_url, shop)
    engine = connect(database_url)
    assert migrate.schema_state(engine).kind == "legacy"
    with pytest.raises(StoreError, match=r"created before Lojal had migrations.*run `lojal db upgrade`") as error:
        load_shop_data(engine, UNTIL)
    assert "delete" not in str(error.value)

    monkeypatch.setenv("LOJAL_DATABASE_URL", database_url)
    result = runner.invoke(app, ["db", "upgrade", "--project", str(project)])
    assert result.exit_code == 0, result.output
    assert f"0001 (created before migrations) -> {migrate.head_revision()}" in result.output

    assert migrate.schema_state(engine).current
    assert differences(engine) == []
    with engine.connect() as conn:
        ledger = conn.execute(select(legacy_schema.send_ledger.c.message_id, legacy_schema.send_ledger.c.state)).all()
        prices = dict(conn.execute(text("SELECT sku, price FROM products")).all())
        accepted = conn.execute(text("SELECT DISTINCT accepted_at, accepted_on, backend FROM send_ledger")).all()
        column_type = [c["type"] for c in __import__("sqlalchemy").inspect(conn).get_columns("products")
                       if c["name"] == "price"][0]
    assert len(ledger) == 40 and {state for _, state in ledger} == {SENT}
    # what was sent before the delivery work counts as accepted then, on its night (caps, "already received")
    assert [(pd.Timestamp(at), pd.Timestamp(on).date(), backend) for at, on, backend in accepted] == [
        (pd.Timestamp(2026, 11, 24, 1, 5), UNTIL, "outbox")]
    assert "NUMERIC" in str(column_type).upper()
    before = expected["products"].set_index("sku")["price"]
    assert len(prices) == len(before)
    for sku, price in before.items():
        assert float(prices[sku]) == pytest.approx(price, abs=5e-5)
    assert [float(prices[sku]) for sku in before.index[:3]] == [199.9, 12.3456, 0.1]
    runs = recent_runs(engine)
    assert runs[["status", "delivered"]].to_dict("records") == [{"status": "completed", "delivered": 40}]
    data = load_shop_data(engine, UNTIL)
    assert (len(data.customers), len(data.lines)) == (expected["customers"], expected["lines"])
    assert data.products["price"].dtype == float

    again = runner.invoke(app, ["db", "upgrade", "--project", str(project)])
    assert again.exit_code == 0 and f"already at {migrate.head_revision()}" in again.output
    engine.dispose()


def test_a_store_older_than_the_baseline_is_named_and_left_alone(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = connect(url)
    legacy_schema.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE products DROP COLUMN margin"))
    with pytest.raises(StoreError, match=r"run `lojal db upgrade`"):
        load_shop_data(engine, UNTIL)
    with pytest.raises(StoreError, match=r"lacks \['products.margin'\].*nothing was changed"):
        migrate.upgrade(engine)
    assert migrate.schema_state(engine).kind == "legacy"
    engine.dispose()


def test_a_store_upgraded_by_a_newer_lojal_is_refused(tmp_path):
    engine = connect(f"sqlite:///{tmp_path / 'new.db'}")
    init_schema(engine)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(StoreError, match="revision 9999, which this Lojal does not know"):
        init_schema(engine)
    with pytest.raises(StoreError, match="newer Lojal"):
        migrate.upgrade(engine)
    engine.dispose()


def test_an_empty_store_asks_for_data_and_db_current_says_where_it_stands(project, tmp_path, monkeypatch):
    monkeypatch.setenv("LOJAL_DATABASE_URL", f"sqlite:///{tmp_path / 'fresh.db'}")
    result = runner.invoke(app, ["db", "current", "--project", str(project)])
    assert result.exit_code == 0 and "empty" in result.output
    runner.invoke(app, ["db", "upgrade", "--project", str(project)])
    result = runner.invoke(app, ["db", "current", "--project", str(project)])
    assert result.exit_code == 0 and f"at {migrate.head_revision()} (current)" in result.output


def test_a_revision_is_written_from_the_difference(tmp_path):
    """`lojal db revision` autogenerates against the head: with schema.py unchanged it finds nothing,
    and the file is numbered after the head."""
    path = migrate.new_revision("nothing yet", versions_dir=tmp_path)
    source = path.read_text()
    head = migrate.head_revision()
    assert path.parent == tmp_path and path.name.startswith(f"{int(head) + 1:04d}_nothing_yet")
    assert f"down_revision = {head!r}" in source
    assert "op." not in source.split("def upgrade")[1].split("def downgrade")[0]
