"""The shop's clock: days begin at the shop's midnight, whatever zone the server or store uses."""

from __future__ import annotations

from datetime import date, datetime

import pandas as pd
import pytest

from lojal.clock import local_to_utc, shop_today, start_of_day_utc, utc_to_local
from lojal.config import load_config
from lojal.features import compute_features
from lojal.paths import Paths
from lojal.sample import generate_shop
from lojal.sample.shop import SampleShop
from lojal.sample.store import write_sample_shop
from lojal.segments import evaluate_segments, load_segments
from lojal.store import connect, load_shop_data

RUN = date(2026, 11, 24)
OSLO = "Europe/Oslo"


def midnight_shop() -> SampleShop:
    """Customer 1 ordered at 00:30 Oslo on the 23rd (23:30 UTC on the 22nd); customer 2 at
    00:30 Oslo on the 24th (23:30 UTC on the 23rd), i.e. on the run date itself in Oslo."""
    customers = pd.DataFrame({
        "customer_id": [1, 2], "email": ["a@example.com", "b@example.com"], "first_name": ["Åse", "Bo"],
        "locale": ["nb", "sv"], "country": ["NO", "SE"], "time_zone": [OSLO, "Europe/Stockholm"],
        "birthday": [None, None], "created_at": [datetime(2025, 1, 1)] * 2, "consent_email": [True, True],
        "consent_at": [datetime(2025, 1, 1)] * 2, "consent_source": ["checkout", "checkout"]})
    products = pd.DataFrame({"sku": ["A"], "title": ["Lamp"], "category": ["Lighting"], "price": [299.0],
                             "currency": ["NOK"], "image_url": ["https://x.example/a.png"],
                             "product_url": ["https://x.example/a"], "in_stock": [True]})
    orders = pd.DataFrame({"order_id": [11, 12], "customer_id": [1, 2], "currency": ["NOK", "NOK"],
                           "placed_at": [datetime(2026, 11, 22, 23, 30), datetime(2026, 11, 23, 23, 30)]})
    lines = pd.DataFrame({"order_id": [11, 12], "line_no": [1, 1], "sku": ["A", "A"], "quantity": [1, 1],
                          "unit_price": [299.0, 299.0]})
    suppressions = pd.DataFrame({"email": pd.Series([], dtype=str), "reason": pd.Series([], dtype=str),
                                 "source": pd.Series([], dtype=str), "created_at": pd.Series([], dtype="datetime64[ns]")})
    return SampleShop(customers, products, orders, lines, suppressions)


def test_yesterday_is_the_shops_yesterday(database_url, project):
    engine = connect(database_url)
    write_sample_shop(engine, midnight_shop(), replace=False)
    paths = Paths.resolve(project)
    config, segments = load_config(paths), load_segments(paths)
    assert config.brand.timezone == OSLO

    oslo = load_shop_data(engine, RUN, OSLO)
    assert list(oslo.orders["order_id"]) == [11]   # order 12 was placed on the run date, in Oslo
    assert oslo.orders["placed_at"].iloc[0] == pd.Timestamp(2026, 11, 23, 0, 30)
    features = compute_features(oslo, config.loyalty)
    assert features.loc[1, "days_since_last_order"] == 1
    assert evaluate_segments(segments, features, oslo)["post_purchase"].to_dict() == {1: True, 2: False}

    utc = load_shop_data(engine, RUN, "UTC")
    features = compute_features(utc, config.loyalty)
    assert features["days_since_last_order"].to_dict() == {1: 2.0, 2: 1.0}
    assert evaluate_segments(segments, features, utc)["post_purchase"].to_dict() == {1: False, 2: True}
    engine.dispose()


@pytest.mark.parametrize(("day", "utc"), [
    (date(2026, 3, 29), datetime(2026, 3, 28, 23)),    # the night clocks go forward: still CET at 00:00
    (date(2026, 3, 30), datetime(2026, 3, 29, 22)),    # summer time
    (date(2026, 10, 25), datetime(2026, 10, 24, 22)),  # the night clocks go back: still CEST at 00:00
    (date(2026, 10, 26), datetime(2026, 10, 25, 23)),
])
def test_the_shops_midnight_across_daylight_saving(day, utc):
    assert start_of_day_utc(pd.Timestamp(day), OSLO) == utc
    assert start_of_day_utc(pd.Timestamp(day), "UTC") == datetime.combine(day, datetime.min.time())


def test_a_midnight_that_does_not_exist_starts_at_the_first_moment_that_does():
    # Santiago skipped 00:00-00:59 on 2026-09-06: the day begins at 01:00 local, 04:00 UTC.
    assert start_of_day_utc(pd.Timestamp(2026, 9, 6), "America/Santiago") == datetime(2026, 9, 6, 4)


def test_conversions_round_trip_and_keep_missing_times():
    times = pd.Series([datetime(2026, 7, 1, 12), None, datetime(2026, 1, 1, 23, 59)])
    local = utc_to_local(times, OSLO)
    assert local.tolist()[0] == pd.Timestamp(2026, 7, 1, 14) and pd.isna(local[1])
    pd.testing.assert_series_equal(local_to_utc(local, OSLO), pd.to_datetime(times).astype("datetime64[ns]"))


def test_sample_shop_is_generated_in_the_shops_wall_clock():
    in_utc = generate_shop(200, seed=3, until=RUN)
    in_oslo = generate_shop(200, seed=3, until=RUN, timezone=OSLO)
    wall_clock = utc_to_local(in_oslo.orders["placed_at"], OSLO)
    shifted = wall_clock - in_utc.orders["placed_at"]
    # The same wall-clock times, except those in the hour skipped by spring's DST jump (moved forward).
    assert ((shifted == pd.Timedelta(0)) | ((shifted > pd.Timedelta(0)) & (shifted <= pd.Timedelta(hours=1)))).all()
    assert (shifted == pd.Timedelta(0)).mean() > 0.99
    assert in_oslo.orders["placed_at"].max() < pd.Timestamp(start_of_day_utc(pd.Timestamp(RUN), OSLO))


def test_the_default_run_date_is_today_where_the_shop_is():
    # UTC+14 and UTC-11 are 25 hours apart: their dates always differ, whatever the server's zone.
    assert shop_today("Pacific/Kiritimati") > shop_today("Pacific/Pago_Pago")
