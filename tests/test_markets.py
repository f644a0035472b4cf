"""Markets: customers by country, prices per market (a product without one is not sold there),
titles per locale, money in the customer's currency and language, imports all-or-nothing."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest
from pydantic import ValidationError
from sqlalchemy import select

from lojal.config import load_config
from lojal.errors import DataImportError
from lojal.features import compute_features
from lojal.markets import Market, MarketCatalogue, Markets, localized_texts, market_prices
from lojal.paths import Paths
from lojal.render.jinja_env import babel_locale, _money_formatter
from lojal.sample import generate_shop
from lojal.segments import evaluate_segments
from lojal.segments.loader import build_segment_set
from lojal.store import connect, load_shop_data, schema
from lojal.store.importer import import_file
from lojal.store.market_import import import_market_file

RUN_DATE = date(2026, 11, 24)
MARKETS = Markets(markets=[Market(id="norway", currency="NOK", countries=["NO"]),
                           Market(id="sweden", currency="SEK", countries=["SE"]),
                           Market(id="euro", currency="EUR", countries=["FI"])], default="euro")


@pytest.mark.parametrize("locale, amount, currency, pattern, expected", [
    ("nb", 1299, "NOK", "¤ #,##0.00", "kr\u00a01\u00a0299,00"),
    ("sv", 1299, "SEK", None, "1\u00a0299,00\u00a0kr"),
    ("da", 1299, "DKK", None, "1.299,00\u00a0kr."),
    ("en", 12.5, "EUR", None, "€12.50"),
])
def test_money_is_written_the_way_each_market_and_language_writes_it(locale, amount, currency, pattern, expected):
    assert _money_formatter(babel_locale(locale), pattern)(amount, currency) == expected


def test_customers_belong_to_their_countrys_market_and_others_to_the_default():
    assigned = MARKETS.assign(pd.Series(["NO", "se", "FI", "US"]))
    assert list(assigned) == ["norway", "sweden", "euro", "euro"]


def test_markets_config_errors_say_what_to_write():
    with pytest.raises(ValidationError, match="quote it, 'NO'"):
        Market(id="norway", currency="NOK", countries=[False])
    with pytest.raises(ValidationError, match="country SE is in markets 'a' and 'b'"):
        Markets(markets=[Market(id="a", currency="SEK", countries=["SE"]), Market(id="b", currency="SEK", countries=["SE"])],
                default="a")
    with pytest.raises(ValidationError, match="default market 'x' is not listed"):
        Markets(markets=[Market(id="a", currency="SEK")], default="x")


def test_a_product_without_a_price_in_a_market_is_not_sold_there_and_unpriced_products_keep_their_base_price():
    products = pd.DataFrame({"title": ["Mug", "Fern", "Tea"], "category": ["Tableware", "Plants", "Tea"],
                             "price": [99.0, 249.0, 119.0], "currency": ["NOK", "NOK", "NOK"]},
                            index=pd.Index(["MUG", "FERN", "TEA"], name="sku"))
    prices = pd.DataFrame({"sku": ["MUG", "MUG", "FERN"], "market": ["norway", "euro", "norway"],
                           "currency": ["NOK", "EUR", "NOK"], "price": [99.0, 8.95, 249.0]})
    euro = market_prices(products, prices, MARKETS.get("euro"))
    assert euro["MUG"] == 8.95 and pd.isna(euro["FERN"]) and pd.isna(euro["TEA"])  # TEA: NOK only, no euro price
    assert market_prices(products, prices, MARKETS.get("norway"))["TEA"] == 119.0
    texts = pd.DataFrame({"sku": ["MUG"], "locale": ["sv"], "title": ["Mugg"], "category": ["Porslin"]})
    assert localized_texts(products, texts, "sv").loc["MUG"].tolist() == ["Mugg", "Porslin"]
    assert localized_texts(products, texts, "sv").loc["FERN", "title"] == "Fern"
    catalogue = MarketCatalogue(MARKETS, products, prices, texts)
    item = catalogue.localize({"sku": "MUG", "title": "Mug", "category": "Tableware", "price": 99.0, "currency": "NOK",
                               "reason_params": {"product": "Mug"}}, "euro", "sv", reprice=True)
    assert item == {"sku": "MUG", "title": "Mugg", "category": "Porslin", "price": 8.95, "currency": "EUR",
                    "reason_params": {"product": "Mugg"}}
    assert list(catalogue.sellable("euro", ["FERN", "MUG", "TEA"])) == [False, True, False]


def test_segments_can_filter_by_market(project):
    from lojal.sample.store import write_sample_shop

    paths = Paths.resolve(project)
    write_sample_shop(connect(paths.database_url), generate_shop(400, seed=3, until=RUN_DATE), replace=False)
    (project / "segments" / "swedes.yaml").write_text("name: swedes\ndescription: Customers in the Swedish market\nwhere:\n  all:\n    - market: sweden\n",
                                                      encoding="utf-8")
    config = load_config(paths)
    data = load_shop_data(connect(paths.database_url), RUN_DATE, config.brand.timezone, config.market_set)
    assert set(data.customers["market"]) == {"norway", "sweden", "denmark", "euro"}
    segment_set, problems = build_segment_set(paths)
    assert problems == []
    features = compute_features(data, config.loyalty, None)
    members = evaluate_segments(segment_set, features, data)
    swedes = set(members.index[members["swedes"]])
    assert swedes and swedes == set(data.customers.index[data.customers["country"] == "SE"])


PRICES = """sku,market,currency,price
A,norway,NOK,149
A,sweden,SEK,155
B,norway,NOK,99.5
"""
BAD_PRICES = """sku,market,currency,price
A,norway,NOK,149
A,finland,EUR,13
B,sweden,NOK,99
Z,norway,NOK,10
A,norway,NOK,149
B,norway,NOK,-1
"""
TRANSLATIONS = """sku,locale,title,category
A,sv,Kaffe,Kaffe
B,da,Krus,
"""


def _store_with_products(tmp_path):
    from test_import import CUSTOMERS, PRODUCTS, write

    engine = connect(f"sqlite:///{tmp_path / 'store.db'}")
    import_file(engine, "customers", write(tmp_path, "c.csv", CUSTOMERS), "customer_id=id,email=mail,first_name=name")
    import_file(engine, "products", write(tmp_path, "p.csv", PRODUCTS))
    return engine


def test_import_prices_and_translations_then_reimport_is_safe(tmp_path):
    engine = _store_with_products(tmp_path)
    (tmp_path / "prices.csv").write_text(PRICES)
    (tmp_path / "texts.csv").write_text(TRANSLATIONS)
    markets = Markets(markets=[Market(id="norway", currency="NOK", countries=["NO"]),
                               Market(id="sweden", currency="SEK", countries=["SE"])], default="norway")
    for _ in range(2):
        assert import_market_file(engine, "prices", tmp_path / "prices.csv", markets=markets) == {"product prices": 3}
        assert import_market_file(engine, "translations", tmp_path / "texts.csv") == {"product translations": 2}
    data = load_shop_data(engine, RUN_DATE, "UTC", markets)
    assert sorted(map(tuple, data.prices[["sku", "market", "price"]].to_numpy().tolist())) == [
        ("A", "norway", 149.0), ("A", "sweden", 155.0), ("B", "norway", 99.5)]
    assert dict(zip(data.customers["email"], data.customers["market"])) == {"ase@example.no": "norway",
                                                                             "bjorn@example.se": "sweden"}
    assert localized_texts(data.products, data.texts, "da").loc["B"].tolist() == ["Krus", "Tableware"]


def test_bad_price_rows_are_all_reported_and_nothing_is_written(tmp_path):
    engine = _store_with_products(tmp_path)
    (tmp_path / "prices.csv").write_text(BAD_PRICES)
    markets = Markets(markets=[Market(id="norway", currency="NOK", countries=["NO"]),
                               Market(id="sweden", currency="SEK", countries=["SE"])], default="norway")
    with pytest.raises(DataImportError) as caught:
        import_market_file(engine, "prices", tmp_path / "prices.csv", markets=markets)
    shown = {str(p) for p in caught.value.problems}
    path = tmp_path / "prices.csv"
    assert f"{path}:3: column 'market': unknown market 'finland'; config/markets.yaml has norway, sweden" in shown
    assert f"{path}:4: column 'currency': NOK is not market sweden's currency (SEK)" in shown
    assert f"{path}:5: unknown sku 'Z': import products first" in shown
    assert f"{path}:6: sku A market norway appears twice in the file" in shown
    assert f"{path}:7: column 'price': '-1' is out of range: it must be more than 0" in shown
    with engine.connect() as conn:
        assert conn.execute(select(schema.product_prices)).all() == []


def test_spend_adds_every_markets_orders_up_in_the_shops_currency_and_last_order_keeps_what_was_paid():
    from lojal.store.shopdata import ShopData

    markets = Markets(markets=[Market(id="norway", currency="NOK", countries=["NO"]),
                               Market(id="euro", currency="EUR", countries=["FI"], rate=11.6)], default="norway")
    customers = pd.DataFrame({"customer_id": [1, 2], "email": ["a@x.no", "b@x.fi"], "first_name": ["A", "B"],
                              "locale": ["nb", "en"], "country": ["NO", "FI"], "time_zone": ["Europe/Oslo"] * 2,
                              "birthday": [None, None], "created_at": [pd.Timestamp("2025-01-01")] * 2,
                              "consent_email": [True, True], "consent_at": [None, None], "consent_source": [None, None]})
    products = pd.DataFrame({"sku": ["A"], "title": ["Mug"], "category": ["Tableware"], "price": [100.0],
                             "currency": ["NOK"], "image_url": [None], "product_url": [None], "in_stock": [True]})
    orders = pd.DataFrame({"order_id": [10, 11], "customer_id": [1, 2], "currency": ["NOK", "EUR"],
                           "placed_at": [pd.Timestamp("2026-11-01 10:00")] * 2})
    lines = pd.DataFrame({"order_id": [10, 11], "line_no": [1, 1], "sku": ["A", "A"], "quantity": [2, 2],
                          "unit_price": [100.0, 8.5]})
    data = ShopData.from_frames(RUN_DATE, customers, products, orders, lines, markets=markets)
    totals = data.orders.set_index("order_id")
    assert totals.loc[10, ["total", "paid_total"]].tolist() == [200.0, 200.0]
    assert totals.loc[11, "paid_total"] == 17.0 and totals.loc[11, "total"] == pytest.approx(197.2)
    assert list(data.customers["market"]) == ["norway", "euro"]


def test_cli_imports_prices_checked_against_the_projects_markets(project, tmp_path):
    from typer.testing import CliRunner

    from lojal.cli import app
    from test_import import PRODUCTS

    (tmp_path / "p.csv").write_text(PRODUCTS)
    (tmp_path / "prices.csv").write_text("sku,market,currency,price\nA,sweden,SEK,155\nB,euro,EUR,8.95\n")
    (tmp_path / "bad.csv").write_text("sku,market,currency,price\nA,sweden,NOK,155\n")
    runner = CliRunner()
    assert runner.invoke(app, ["import", "products", str(tmp_path / "p.csv"), "--project", str(project)]).exit_code == 0
    done = runner.invoke(app, ["import", "prices", str(tmp_path / "prices.csv"), "--project", str(project)])
    assert done.exit_code == 0 and "2 product prices" in done.output, done.output
    bad = runner.invoke(app, ["import", "prices", str(tmp_path / "bad.csv"), "--project", str(project)])
    assert isinstance(bad.exception, DataImportError)  # `lojal` (cli.main) prints it and exits 1
    assert f"{tmp_path / 'bad.csv'}:2: column 'currency': NOK is not market sweden's currency (SEK)" in str(bad.exception)
