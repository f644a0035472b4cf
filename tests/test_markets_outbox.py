"""The demo's outbox in four markets: every e-mail of a real nightly run shows each product at the
price of the customer's market (in its currency, formatted for their language) and titled in their
language; order items at what was paid; never a product the market does not sell."""

from __future__ import annotations

import re
from collections import Counter
from datetime import date

import pandas as pd
import pytest
from markupsafe import escape
from sqlalchemy import select

from lojal.config import load_config
from lojal.paths import Paths
from lojal.render.jinja_env import babel_locale, _money_formatter
from lojal.sample import generate_shop
from lojal.sample.store import write_sample_shop
from lojal.store import connect
from lojal.store.schema import send_ledger

RUN_DATE = date(2026, 11, 24)
pytestmark = [pytest.mark.usefixtures("prefect_harness"), pytest.mark.slow]
_PRODUCT_LINK = re.compile(r'href="https://nordlys\.example/p/([a-z0-9-]+)\?[^"]*utm_content=([a-z0-9-]+)[&"]')


def test_every_email_in_the_outbox_has_its_markets_prices_and_language(project):
    from lojal.flows.nightly import nightly

    shop = generate_shop(1200, seed=11, until=RUN_DATE)
    paths = Paths.resolve(project)
    write_sample_shop(connect(paths.database_url), shop, replace=False)
    result = nightly(run_date=RUN_DATE, project_dir=str(project))
    assert sum(c["failed"] for c in result["campaigns"]) == 0

    config = load_config(paths)
    markets = config.market_set
    engine = connect(paths.database_url)
    with engine.connect() as conn:
        ledger = pd.read_sql(select(send_ledger).where(send_ledger.c.state != "held_out"),  # held out: never sent
                             conn).set_index("message_id")
    customers = shop.customers.set_index("customer_id")
    prices = shop.prices.set_index(["sku", "market"])["price"]
    titles = shop.texts.set_index(["sku", "locale"])["title"]
    english = shop.products.set_index("sku")["title"]
    paid_by: dict[tuple[int, str], list[float]] = {}
    lines = shop.lines.merge(shop.orders[["order_id", "customer_id"]], on="order_id")
    for cid, sku, price in zip(lines["customer_id"], lines["sku"], lines["unit_price"]):
        paid_by.setdefault((int(cid), sku), []).append(float(price))
    money = {loc: _money_formatter(babel_locale(loc), config.brand.money_formats.get(loc))
             for loc in ("en", "nb", "sv", "da")}

    seen, checked_prices = Counter(), 0
    files = sorted(paths.outbox_dir(RUN_DATE).glob("*/*.html"))
    assert len(files) == len(ledger) > 100
    for path in files:
        html = path.read_text(encoding="utf-8")
        customer = customers.loc[int(ledger.at[path.stem, "customer_id"])]
        market = markets.of_country(customer["country"])
        locale = customer["locale"]
        seen[(market.currency, locale)] += 1
        links = set(_PRODUCT_LINK.findall(html))
        for sku_lower, slot in links:
            sku = sku_lower.upper()
            title = english[sku] if locale == "en" else titles[(sku, locale)]
            assert str(escape(title)) in html, (path.name, sku, title)
            if slot.startswith("product-"):
                assert (sku, market.id) in prices.index, f"{path.name}: {sku} is not sold in {market.id}"
                expected = money[locale](float(prices[(sku, market.id)]), market.currency)
                assert expected in html, (path.name, sku, expected)
                checked_prices += 1
        for sku_lower, slot in links:
            if slot == "order-item":  # what the customer paid, in their order's currency
                paid = paid_by.get((customer.name, sku_lower.upper()), [])
                assert any(money[locale](p, market.currency) in html for p in paid), (path.name, sku_lower)
                checked_prices += 1
        # no amount in another market's currency
        for other in ("NOK", "SEK", "DKK", "EUR", "Nkr", "£"):
            if other != market.currency:
                assert other not in html, (path.name, other)
    assert checked_prices > 100
    assert {currency for currency, _ in seen} == {"NOK", "SEK", "DKK", "EUR"}
    assert {locale for _, locale in seen} == {"en", "nb", "sv", "da"}
    assert seen[("NOK", "nb")] and seen[("SEK", "sv")] and seen[("DKK", "da")] and seen[("EUR", "en")]
