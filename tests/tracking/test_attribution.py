"""Attribution windows, link pass-through, opens and machine opens; the message id on links."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal

from lojal.tracking.attribution import Order, Send, Touch, attribute, totals
from lojal.tracking.links import message_id_of, with_message_id

T = datetime(2026, 11, 20, 12, 0)
SENDS = {"m1": Send("m1", "win_back", 1, "A", T), "m2": Send("m2", "birthday", 1, "", T + timedelta(days=1)),
         "m3": Send("m3", "win_back", 2, "B", T)}


def order(n: int, customer: int, days: float, revenue: str = "100.10", mid: str | None = None) -> Order:
    return Order(n, customer, T + timedelta(days=days), Decimal(revenue), mid)


def test_last_click_within_the_window_wins_and_nothing_after_it():
    touches = [Touch("m1", "click", T + timedelta(hours=1)), Touch("m2", "click", T + timedelta(days=1, hours=1))]
    credits = attribute([order(1, 1, 0.5), order(2, 1, 2), order(3, 1, 6.04), order(4, 1, 6.1), order(5, 1, -1)],
                        SENDS, touches, window_days=5)
    assert {(c.order_id, c.message_id, c.how) for c in credits} == {(1, "m1", "click"), (2, "m2", "click"),
                                                                   (3, "m2", "click")}
    assert {c.order_id for c in attribute([order(4, 1, 6.1)], SENDS, touches, window_days=7)} == {4}


def test_opens_count_only_when_asked_and_machine_opens_never():
    touches = [Touch("m1", "open", T + timedelta(hours=1)), Touch("m3", "open", T + timedelta(hours=1), machine=True)]
    orders = [order(1, 1, 1), order(2, 2, 1)]
    assert attribute(orders, SENDS, touches) == []
    credits = attribute(orders, SENDS, touches, use_opens=True)
    assert [(c.order_id, c.how) for c in credits] == [(1, "open")]


def test_a_passed_through_message_id_beats_the_last_click_but_only_for_its_recipient():
    touches = [Touch("m2", "click", T + timedelta(days=1, hours=1))]
    credits = attribute([order(1, 1, 2, mid="m1"), order(2, 2, 2, mid="m1"), order(3, 1, 0.5, mid="m2")],
                        SENDS, touches)
    assert {(c.order_id, c.message_id, c.how) for c in credits} == {(1, "m1", "link")}


def test_totals_are_exact_per_campaign_arm_and_day():
    touches = [Touch("m1", "click", T), Touch("m3", "click", T)]
    orders = [order(1, 1, 0.1, "0.10"), order(2, 1, 0.2, "0.20"), order(3, 2, 0.3, "1299.00")]
    result = totals(attribute(orders, SENDS, touches))
    assert result[("win_back", "A", date(2026, 11, 20))].revenue == Decimal("0.30")
    assert result[("win_back", "A", date(2026, 11, 20))].conversions == 2
    assert result[("win_back", "B", date(2026, 11, 20))].revenue == Decimal("1299.00")


def test_the_message_id_rides_on_tracked_links():
    assert with_message_id("https://s.example/p/1?utm_source=lojal#top", "ab12") == \
        "https://s.example/p/1?utm_source=lojal&lojal_mid=ab12#top"
    assert with_message_id("https://s.example/", "ab12") == "https://s.example/?lojal_mid=ab12"
    assert with_message_id("mailto:x@y.no", "ab12") == "mailto:x@y.no"
    tagged = with_message_id("https://s.example/?a=1", "a b&c")
    assert message_id_of(tagged) == "a b&c" and with_message_id(tagged, "other") == tagged
