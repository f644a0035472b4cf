"""CSV/Parquet import: column mapping, precise problems, all-or-nothing, safe re-import."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest
from sqlalchemy import func, select

from lojal.errors import DataImportError
from lojal.store import connect, load_shop_data, schema
from lojal.store.importer import import_file

CUSTOMERS = """id,mail,name,locale,country,time_zone,birthday,created_at,consent_email
1,ase@example.no,Åse,nb,NO,Europe/Oslo,1980-02-01,2025-01-01T10:00:00Z,true
2,bjorn@example.se,Björn,sv,SE,Europe/Stockholm,,2025-02-01,false
"""
PRODUCTS = """sku,title,category,price,currency,image_url,product_url,in_stock,margin
A,Coffee,Coffee,149,NOK,https://x.example/a.jpg,https://x.example/a,true,35%
B,Mug,Tableware,99.5,NOK,,https://x.example/b,0,
"""
ORDERS = """order_id,customer_id,placed_at,sku,quantity,unit_price,currency
10,1,2026-11-20T08:00:00Z,A,2,149,NOK
10,1,2026-11-20T08:00:00Z,B,1,99.5,NOK
11,2,2026-11-21T09:30:00Z,A,1,149,NOK
"""


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def count(engine, table):
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


def test_import_with_mapping_then_reimport_is_safe(database_url, tmp_path):
    engine = connect(database_url)
    mapping = "customer_id=id,email=mail,first_name=name"
    assert import_file(engine, "customers", write(tmp_path, "c.csv", CUSTOMERS), mapping) == {"customers": 2}
    assert import_file(engine, "products", write(tmp_path, "p.csv", PRODUCTS)) == {"products": 2}
    orders = write(tmp_path, "o.csv", ORDERS)
    first = import_file(engine, "orders", orders)
    assert first == {"orders": 2, "order lines": 3, "orders already present (skipped)": 0}
    again = import_file(engine, "orders", orders)
    assert again == {"orders": 0, "order lines": 0, "orders already present (skipped)": 2}

    data = load_shop_data(engine, date(2026, 11, 22))
    assert data.customers.loc[1, "first_name"] == "Åse"
    assert not bool(data.products.loc["B", "in_stock"])
    assert data.products.loc["A", "margin"] == pytest.approx(0.35) and pd.isna(data.products.loc["B", "margin"])
    assert data.orders.set_index("order_id").loc[10, "total"] == pytest.approx(2 * 149 + 99.5)
    engine.dispose()


def test_bad_rows_are_reported_and_nothing_is_written(tmp_path):
    engine = connect(f"sqlite:///{tmp_path / 's.db'}")
    bad = CUSTOMERS.replace("ase@example.no", "ase@@example") + "3,c@example.dk,Cé,fr,DK,Europe/Copenhagen,,yesterday,maybe\n"
    path = write(tmp_path, "c.csv", bad)
    with pytest.raises(DataImportError) as caught:
        import_file(engine, "customers", path, "customer_id=id,email=mail,first_name=name")
    messages = [str(p) for p in caught.value.problems]
    assert messages[0].startswith(f"{path}:2: column 'mail': 'ase@@example' is not a valid e-mail address")
    assert f"{path}:4: column 'locale': 'fr' is not a supported locale; use one of en, nb, sv, da" in messages
    assert any(m.startswith(f"{path}:4: column 'created_at': 'yesterday' is not a date") for m in messages)
    assert f"{path}:4: column 'consent_email': 'maybe' is not true/false (use true, false, 1, 0, yes or no)" in messages
    assert count(engine, schema.customers) == 0  # the two good rows were not imported either


def test_missing_column_and_unknown_references(tmp_path):
    engine = connect(f"sqlite:///{tmp_path / 's.db'}")
    path = write(tmp_path, "p.csv", PRODUCTS.replace("price,", "cost,"))
    with pytest.raises(DataImportError) as caught:
        import_file(engine, "products", path)
    assert str(caught.value.problems[0]) == (
        f"{path}:1: missing column 'price' (price); add it or map it with --columns price=<your column>")

    import_file(engine, "products", write(tmp_path, "p2.csv", PRODUCTS))
    orders = write(tmp_path, "o.csv", ORDERS)
    with pytest.raises(DataImportError) as caught:
        import_file(engine, "orders", orders)
    assert f"{orders}:2: unknown customer_id 1: import customers first" in [str(p) for p in caught.value.problems]
    assert count(engine, schema.orders) == 0


def test_parquet_rows_are_numbered_from_one(tmp_path):
    engine = connect(f"sqlite:///{tmp_path / 's.db'}")
    frame = pd.read_csv(pd.io.common.StringIO(PRODUCTS), dtype=str, keep_default_na=False)
    frame.loc[1, "price"] = "free"
    path = tmp_path / "p.parquet"
    frame.to_parquet(path)
    with pytest.raises(DataImportError) as caught:
        import_file(engine, "products", path)
    assert [str(p) for p in caught.value.problems] == [f"{path}:2: column 'price': 'free' is not a number"]


def test_margin_is_a_share_of_the_price(tmp_path):
    engine = connect(f"sqlite:///{tmp_path / 's.db'}")
    path = write(tmp_path, "p.csv", PRODUCTS.replace("true,35%", "true,35").replace("0,\n", "0,0.4\n"))
    with pytest.raises(DataImportError) as caught:
        import_file(engine, "products", path)
    assert [str(p) for p in caught.value.problems] == [
        f"{path}:2: column 'margin': '35' is not a share of the price; use a number from 0 to 1 (0.35) "
        "or a percentage (35%)"]
    assert count(engine, schema.products) == 0


def test_unknown_time_zone_is_a_row_error_naming_the_column_with_a_suggestion(tmp_path):
    engine = connect(f"sqlite:///{tmp_path / 's.db'}")
    bad = (CUSTOMERS.replace("Europe/Stockholm", "Europe/Stokholm")
           + "3,c@example.dk,Carl,da,DK,europe/copenhagen,,2025-03-01,true\n"
           + "4,d@example.dk,Dora,da,DK,Mars/Olympus,,2025-03-01,true\n")
    path = write(tmp_path, "c.csv", bad.replace(",time_zone,", ",tz,"))
    with pytest.raises(DataImportError) as caught:
        import_file(engine, "customers", path, "customer_id=id,email=mail,first_name=name,time_zone=tz")
    messages = [str(p) for p in caught.value.problems]
    assert messages == [
        f"{path}:3: column 'tz': unknown time zone 'Europe/Stokholm'; did you mean 'Europe/Stockholm'?",
        f"{path}:4: column 'tz': unknown time zone 'europe/copenhagen'; did you mean 'Europe/Copenhagen'?",
        f"{path}:5: column 'tz': unknown time zone 'Mars/Olympus'; use an IANA name such as Europe/Oslo"]
    assert count(engine, schema.customers) == 0
