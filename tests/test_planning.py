"""Who gets which campaign: priority, tonight's allowance, consent, suppression, occasions."""

from __future__ import annotations

from datetime import date, datetime

import pandas as pd

from lojal.config import CampaignsFile
from lojal.planning import ALREADY_RECEIVED, CARRIED_OVER, NO_OCCASION, SENT_EARLIER_TONIGHT, assign_campaigns
from lojal.audience import NO_CONSENT, SUPPRESSED, INVALID_EMAIL
from lojal.store.shopdata import ShopData

RUN = date(2026, 11, 24)


def shop(consent=(True, True, True, False, True), emails=None, suppressed=frozenset()) -> ShopData:
    ids = [1, 2, 3, 4, 5]
    customers = pd.DataFrame({
        "customer_id": ids, "email": emails or [f"c{i}@example.com" for i in ids], "first_name": "X",
        "locale": "en", "country": "GB", "time_zone": "Europe/London", "birthday": None,
        "created_at": datetime(2025, 1, 1), "consent_email": list(consent),
        "consent_at": datetime(2025, 1, 1), "consent_source": "checkout"})
    products = pd.DataFrame({"sku": ["A"], "title": "A", "category": "C", "price": 10.0, "currency": "NOK",
                             "image_url": None, "product_url": None, "in_stock": True})
    orders = pd.DataFrame({"order_id": [11, 12, 13, 14], "customer_id": [1, 2, 3, 4],
                           "placed_at": datetime(2026, 11, 23, 12), "currency": "NOK"})
    lines = pd.DataFrame({"order_id": [11, 12, 13, 14], "line_no": 1, "sku": "A", "quantity": 1, "unit_price": 10.0})
    return ShopData.from_frames(RUN, customers, products, orders, lines, suppressed)


def features(data: ShopData) -> pd.DataFrame:
    last = data.orders.groupby("customer_id").agg(last_order_id=("order_id", "max"), last_order_at=("placed_at", "max"))
    frame = last.reindex(data.customers.index)
    frame["last_order_id"] = frame["last_order_id"].astype("Int64")
    frame["tier"] = "Bronze"
    return frame


CAMPAIGNS = CampaignsFile.model_validate({"campaigns": [
    {"id": "thanks", "name": "Thanks", "segment": "ordered", "template": "t", "priority": 100, "occasion": "last_order"},
    {"id": "news", "name": "News", "segment": "everyone", "template": "t", "priority": 10, "occasion": "run_date"},
]})
NO_SENDS = pd.DataFrame(columns=["campaign_id", "customer_id", "occasion_key", "night"])


def membership(index) -> pd.DataFrame:
    return pd.DataFrame({"ordered": index.isin([1, 2, 3, 4]), "everyone": True}, index=index)


def by_id(audiences):
    return {a.campaign.id: a for a in audiences}


def test_priority_allowance_and_gate():
    data = shop(suppressed=frozenset({"c2@example.com"}))
    feats = features(data)
    result = by_id(assign_campaigns(CAMPAIGNS, data, feats, membership(feats.index), NO_SENDS))

    thanks = result["thanks"]
    assert thanks.matched == 4
    assert thanks.recipients["customer_id"].tolist() == [1, 3]
    assert thanks.recipients["occasion_key"].tolist() == ["order:11", "order:13"]
    assert dict(thanks.exclusions) == {SUPPRESSED: 1, NO_CONSENT: 1}

    news = result["news"]
    assert news.recipients["customer_id"].tolist() == [5]
    assert news.exclusions[SUPPRESSED] == 1 and news.exclusions[NO_CONSENT] == 1
    assert news.exclusions["gets higher-priority thanks tonight"] == 2


def test_allowance_of_two_lets_both_through():
    data = shop()
    feats = features(data)
    two = CampaignsFile.model_validate({**CAMPAIGNS.model_dump(), "max_emails_per_customer_per_run": 2})
    result = by_id(assign_campaigns(two, data, feats, membership(feats.index), NO_SENDS))
    assert result["news"].recipients["customer_id"].tolist() == [1, 2, 3, 5]


def test_earlier_send_for_the_same_occasion_excludes_and_frees_the_allowance():
    data = shop()
    feats = features(data)
    sent = pd.DataFrame({"campaign_id": ["thanks"], "customer_id": [1], "occasion_key": ["order:11"],
                         "night": [date(2026, 11, 23)]})
    result = by_id(assign_campaigns(CAMPAIGNS, data, feats, membership(feats.index), sent))
    assert result["thanks"].exclusions[ALREADY_RECEIVED] == 1
    assert 1 in result["news"].recipients["customer_id"].tolist()


def test_sent_tonight_keeps_its_place_so_a_rerun_plans_the_same():
    data = shop()
    feats = features(data)
    sent = pd.DataFrame({"campaign_id": ["thanks"], "customer_id": [1], "occasion_key": ["order:11"], "night": [RUN]})
    first = by_id(assign_campaigns(CAMPAIGNS, data, feats, membership(feats.index), NO_SENDS))
    rerun = by_id(assign_campaigns(CAMPAIGNS, data, feats, membership(feats.index), sent))
    assert rerun["thanks"].exclusions[SENT_EARLIER_TONIGHT] == 1
    assert rerun["thanks"].recipients["customer_id"].tolist() == [c for c in first["thanks"].recipients["customer_id"] if c != 1]
    pd.testing.assert_frame_equal(first["news"].recipients, rerun["news"].recipients)


def test_accepted_tonight_though_planned_earlier_holds_tonights_place():
    """The known defect: failed on night D, sent on D+1. Its row counts for D+1 (accepted_on), so a
    re-run of D+1 keeps the customer's place instead of mailing them a second campaign."""
    data = shop()
    feats = features(data)
    sent = pd.DataFrame({"campaign_id": ["news"], "customer_id": [5], "occasion_key": ["date:2026-11-23"],
                         "night": [RUN]})
    rerun = by_id(assign_campaigns(CAMPAIGNS, data, feats, membership(feats.index), sent))
    assert 5 not in rerun["news"].recipients["customer_id"].tolist()
    assert 5 not in rerun["thanks"].recipients["customer_id"].tolist()


def test_carried_over_messages_take_the_allowance_first():
    data = shop()
    feats = features(data)
    carried = pd.DataFrame({"campaign_id": ["news"], "customer_id": [1]})
    result = by_id(assign_campaigns(CAMPAIGNS, data, feats, membership(feats.index), NO_SENDS, carried))
    assert result["thanks"].recipients["customer_id"].tolist() == [2, 3]
    assert result["thanks"].exclusions["gets higher-priority news tonight"] == 1
    assert result["news"].exclusions[CARRIED_OVER] == 1


def test_no_occasion_and_invalid_address():
    data = shop(emails=["c1@example.com", "c2@example.com", "not-an-address", "c4@example.com", "c5@example.com"])
    feats = features(data)
    everyone = pd.DataFrame({"ordered": True, "everyone": True}, index=feats.index)
    result = by_id(assign_campaigns(CAMPAIGNS, data, feats, everyone, NO_SENDS))
    assert result["thanks"].exclusions[NO_OCCASION] == 1  # customer 5 never ordered
    assert result["thanks"].exclusions[INVALID_EMAIL] == 1
