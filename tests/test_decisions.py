"""The pure planner: every exclusion reason, priority, caps across nights (on the accepted time),
occasion keys across repeated and back-dated runs, holdouts, A/B arms, local send times."""

from __future__ import annotations

from datetime import date, datetime

import numpy as np
import pandas as pd
import pytest
from types import SimpleNamespace
from scipy.stats import binomtest

from lojal import decisions as d
from lojal.config import CampaignsFile
from lojal.decisions import ShopSecret, decide
from lojal.store.shopdata import ShopData

RUN = date(2026, 11, 24)
NOW = pd.Timestamp("2026-11-24 01:00")  # planning moment, naive UTC (02:00 in Oslo)
SECRET = ShopSecret(b"test-secret-0123456789abcdef")
HISTORY_COLUMNS = ["campaign_id", "customer_id", "occasion_key", "state", "accepted_at", "run_date"]


def shop(n=6, consent=None, emails=None, zones=None, suppressed=frozenset()) -> ShopData:
    ids = list(range(1, n + 1))
    customers = pd.DataFrame({
        "customer_id": ids, "email": emails or [f"c{i}@example.com" for i in ids], "first_name": "X",
        "locale": "en", "country": "NO", "time_zone": zones or "Europe/Oslo", "birthday": None,
        "created_at": datetime(2025, 1, 1), "consent_email": consent or [True] * n,
        "consent_at": datetime(2025, 1, 1), "consent_source": "checkout"})
    products = pd.DataFrame({"sku": ["A"], "title": "A", "category": "C", "price": 10.0, "currency": "NOK",
                             "image_url": None, "product_url": None, "in_stock": True})
    orders = pd.DataFrame({"order_id": [10 + i for i in ids], "customer_id": ids,
                           "placed_at": datetime(2026, 11, 23, 12), "currency": "NOK"})
    lines = pd.DataFrame({"order_id": orders["order_id"], "line_no": 1, "sku": "A", "quantity": 1, "unit_price": 10.0})
    return ShopData.from_frames(RUN, customers, products, orders, lines, suppressed)


def features(data: ShopData, tiers=None) -> pd.DataFrame:
    last = data.orders.groupby("customer_id").agg(last_order_id=("order_id", "max"), last_order_at=("placed_at", "max"))
    frame = last.reindex(data.customers.index)
    frame["last_order_id"] = frame["last_order_id"].astype("Int64")
    frame["tier"] = tiers or "Bronze"
    return frame


def campaigns(*specs, **top) -> CampaignsFile:
    defaults = {"name": "N", "template": "t", "holdout": 0}
    return CampaignsFile.model_validate({**top, "campaigns": [{**defaults, **s} for s in specs]})


THANKS = {"id": "thanks", "segment": "everyone", "priority": 100, "occasion": "last_order"}
NEWS = {"id": "news", "segment": "everyone", "priority": 10, "occasion": "run_date"}


def everyone(feats) -> pd.DataFrame:
    return pd.DataFrame({"everyone": True, "some": feats.index.isin([1, 2])}, index=feats.index)


def history(*rows) -> pd.DataFrame:
    frame = pd.DataFrame(list(rows), columns=HISTORY_COLUMNS)
    frame["accepted_at"] = pd.to_datetime(frame["accepted_at"])
    return frame


def plan(config, data=None, hist=None, now=NOW, feats=None, run_date=None, tier_order=None, member=None):
    data = data or shop()
    feats = features(data) if feats is None else feats
    member = everyone(feats) if member is None else member
    return decide(config, data, feats, member, history() if hist is None else hist, now=now,
                  shop_timezone="Europe/Oslo", secret=SECRET, run_date=run_date, tier_order=tier_order)


def row(frame, campaign, customer):
    match = frame[(frame["campaign"] == campaign) & (frame["customer_id"] == customer)]
    assert len(match) == 1, match
    return match.iloc[0]


# --------------------------------------------------------------- reasons and priority

def test_gate_reasons_and_columns():
    data = shop(consent=[True, False, True, True, True, True], emails=["c1@example.com", "c2@example.com",
                "c3@example.com", "not-an-address", "c5@example.com", "c6@example.com"],
                suppressed=frozenset({"c3@example.com"}))
    out = plan(campaigns(THANKS), data)
    assert list(out.columns) == list(d.DECISION_COLUMNS)
    assert row(out, "thanks", 1)["decision"] == d.SELECTED and pd.isna(row(out, "thanks", 1)["reason"])
    assert row(out, "thanks", 2)["reason"] == d.NO_CONSENT
    assert row(out, "thanks", 3)["reason"] == d.SUPPRESSED
    assert row(out, "thanks", 4)["reason"] == d.INVALID_EMAIL
    assert row(out, "thanks", 2)["detail"] == d.REASONS[d.NO_CONSENT]
    assert (out.loc[out["decision"] == d.EXCLUDED, "send_at"].isna()).all()


def test_only_segment_members_are_considered_and_no_occasion():
    data = shop()
    feats = features(data)
    feats.loc[[2], "last_order_id"] = pd.NA
    out = plan(campaigns({**THANKS, "segment": "some"}), data, feats=feats)
    assert sorted(out["customer_id"]) == [1, 2]
    assert row(out, "thanks", 2)["reason"] == d.NO_OCCASION
    assert row(out, "thanks", 1)["occasion_key"] == "order:11"


def test_priority_decides_and_lower_priority_names_the_winner():
    config = campaigns(NEWS, {**THANKS, "segment": "some"})
    out = plan(config)
    assert row(out, "thanks", 1)["decision"] == d.SELECTED
    news1 = row(out, "news", 1)
    assert news1["reason"] == d.LOWER_PRIORITY and news1["detail"] == "gets higher-priority thanks tonight"
    assert row(out, "news", 3)["decision"] == d.SELECTED
    two = campaigns(NEWS, {**THANKS, "segment": "some"}, max_emails_per_customer_per_run=2)
    assert (plan(two)["decision"] == d.SELECTED).all()


# --------------------------------------------------------------- occasions across nights

def test_already_received_across_repeated_and_back_dated_runs():
    config = campaigns(THANKS)
    sent_earlier = history(("thanks", 1, "order:11", "sent", "2026-11-23 02:00", date(2026, 11, 23)),
                           ("thanks", 2, "order:12", "failed", None, date(2026, 11, 23)),
                           ("thanks", 3, "order:13", "unknown", None, date(2026, 11, 23)),
                           ("thanks", 4, "order:99", "sent", "2026-11-01 02:00", date(2026, 11, 1)),
                           ("thanks", 5, "order:15", "sent", "2026-11-30 02:00", date(2026, 11, 30)))
    out = plan(config, hist=sent_earlier)
    assert row(out, "thanks", 1)["reason"] == d.ALREADY_RECEIVED    # same occasion, earlier night
    assert row(out, "thanks", 2)["decision"] == d.SELECTED          # failed: never received
    assert row(out, "thanks", 3)["reason"] == d.ALREADY_RECEIVED    # unknown: may have gone out
    assert row(out, "thanks", 4)["decision"] == d.SELECTED          # another occasion
    assert row(out, "thanks", 5)["reason"] == d.ALREADY_RECEIVED    # back-dated run: received on a later night
    # a re-run of the same night recomputes tonight's own rows: the same decisions again
    tonight = history(("thanks", 1, "order:11", "sent", "2026-11-24 01:05", RUN))
    again = plan(config, hist=tonight)
    assert (again["decision"] == d.SELECTED).all()
    assert again.drop(columns="send_at").equals(plan(config).drop(columns="send_at"))


def test_tier_upgrade_only_into_a_higher_tier_than_ever_congratulated():
    data = shop(3)
    feats = features(data, tiers=["Silver", "Silver", "Gold"])
    config = campaigns({"id": "tier_up", "segment": "everyone", "priority": 5, "occasion": "tier"})
    had = history(("tier_up", 1, "tier:Gold", "sent", "2026-01-10 02:00", date(2026, 1, 10)),
                  ("tier_up", 2, "tier:Bronze", "sent", "2026-01-10 02:00", date(2026, 1, 10)),
                  ("tier_up", 3, "tier:Silver", "sent", "2026-01-10 02:00", date(2026, 1, 10)))
    out = plan(config, data, had, feats=feats, tier_order=["Bronze", "Silver", "Gold"])
    assert row(out, "tier_up", 1)["reason"] == d.TIER_NOT_HIGHER   # back to Silver after Gold
    assert row(out, "tier_up", 2)["decision"] == d.SELECTED         # Bronze -> Silver
    assert row(out, "tier_up", 3)["decision"] == d.SELECTED         # Silver -> Gold


# --------------------------------------------------------------- contact pressure

CAPS = {"frequency_caps": [{"max": 1, "hours": 16}, {"max": 3, "hours": 168}]}


def test_caps_count_accepted_time_not_planned_night():
    config = campaigns(NEWS, **CAPS)
    hist = history(
        # planned two nights ago but accepted only 10 hours ago: inside the 16-hour cap
        ("other", 1, "x", "sent", "2026-11-23 15:00", date(2026, 11, 22)),
        # planned last night, accepted 17 hours ago: outside
        ("other", 2, "x", "sent", "2026-11-23 08:00", date(2026, 11, 23)),
        # planned but never accepted (failed): does not count
        ("other", 3, "x", "failed", None, date(2026, 11, 23)),
        # three in the last 7 days, each more than 16 hours apart from now
        ("a", 4, "x", "sent", "2026-11-18 01:00", date(2026, 11, 18)),
        ("b", 4, "x", "sent", "2026-11-20 01:00", date(2026, 11, 20)),
        ("c", 4, "x", "sent", "2026-11-22 01:00", date(2026, 11, 22)),
        # three, but the oldest 7 days and 1 hour ago: only two inside the window
        ("a", 5, "x", "sent", "2026-11-17 00:00", date(2026, 11, 17)),
        ("b", 5, "x", "sent", "2026-11-20 01:00", date(2026, 11, 20)),
        ("c", 5, "x", "sent", "2026-11-22 01:00", date(2026, 11, 22)))
    out = plan(config, hist=hist)
    assert row(out, "news", 1)["reason"] == d.CAPPED
    assert row(out, "news", 1)["detail"].startswith("at most 1 per 16 hours")
    assert row(out, "news", 2)["decision"] == d.SELECTED
    assert row(out, "news", 3)["decision"] == d.SELECTED
    assert row(out, "news", 4)["reason"] == d.CAPPED
    assert row(out, "news", 4)["detail"].startswith("at most 3 per 7 days")
    assert row(out, "news", 5)["decision"] == d.SELECTED


def test_caps_across_consecutive_nights():
    config = campaigns(NEWS, **CAPS)
    hist, results = history(), []
    for night in range(9):
        now = pd.Timestamp("2026-11-24 01:00") + pd.Timedelta(days=night)
        run = (now.date())
        out = plan(config, hist=hist, now=now, run_date=run)
        chosen = out[out["decision"] == d.SELECTED]
        results.append(1 in set(chosen["customer_id"]))
        # SendGrid accepts each message 20 hours after planning (e.g. a scheduled send)
        accepted = [("news", int(c), f"date:{run}", "sent", now + pd.Timedelta(hours=20), run) for c in chosen["customer_id"]]
        hist = pd.concat([hist, history(*accepted)], ignore_index=True)
    # night 0 sends; night 1 is 4 hours after that acceptance: capped (16 hours); nights 6 and 7
    # still have three acceptances within 7 days (the first, 24 Nov 21:00, leaves the window on 1 Dec 21:00)
    assert results == [True, False, True, False, True, False, False, False, True]


def test_exempt_campaign_is_neither_capped_nor_counted():
    thanks = {**THANKS, "exempt_from_caps": True}
    config = campaigns(thanks, NEWS, max_emails_per_customer_per_run=2, **CAPS)
    hist = history(("news", 1, "date:2026-11-23", "sent", "2026-11-23 20:00", date(2026, 11, 23)),
                   ("thanks", 2, "order:1", "sent", "2026-11-23 20:00", date(2026, 11, 23)))
    out = plan(config, hist=hist)
    assert row(out, "thanks", 1)["decision"] == d.SELECTED          # exempt: not capped
    assert row(out, "news", 1)["reason"] == d.CAPPED
    assert row(out, "news", 2)["decision"] == d.SELECTED            # an exempt send does not count
    assert row(out, "news", 3)["decision"] == d.SELECTED            # tonight's exempt thanks does not count


def test_tonights_higher_priority_send_fills_the_cap():
    config = campaigns(THANKS, NEWS, max_emails_per_customer_per_run=2, **CAPS)
    out = plan(config)
    assert (out[out["campaign"] == "thanks"]["decision"] == d.SELECTED).all()
    news = row(out, "news", 1)
    assert news["reason"] == d.LOWER_PRIORITY and "higher-priority" in news["detail"]


# --------------------------------------------------------------- holdout and arms

def test_holdout_is_stable_salted_and_binomial():
    ids = np.arange(1, 200_001, dtype=np.int64)
    camp = campaigns({**NEWS, "holdout": 0.1}).campaigns[0]
    mask = d.held_out(camp, ids, SECRET)
    assert binomtest(int(mask.sum()), len(ids), 0.1).pvalue > 0.001
    assert np.array_equal(mask, d.held_out(camp, ids[::-1].copy(), SECRET)[::-1])  # per customer, not per position
    other_salt = d.held_out(camp, ids, ShopSecret(b"another-secret-0123456789"))
    assert 0.15 < np.mean(mask != other_salt) < 0.21    # independent: 2 * 0.1 * 0.9
    for share in (0.05, 0.25, 0.5):
        c = campaigns({**NEWS, "holdout": share}).campaigns[0]
        assert binomtest(int(d.held_out(c, ids, SECRET).sum()), len(ids), share).pvalue > 0.001
    assert not d.held_out(campaigns({**NEWS, "holdout": 0}).campaigns[0], ids, SECRET).any()


def test_holdout_in_plan_is_stable_across_nights_and_keeps_the_slot_free():
    data = shop(400)
    config = campaigns({**THANKS, "holdout": 0.25}, NEWS)
    first = plan(config, data)
    second = plan(config, data, now=NOW + pd.Timedelta(days=1), run_date=RUN)
    held = set(first.loc[first["decision"] == d.HELD_OUT, "customer_id"])
    assert held == set(second.loc[second["decision"] == d.HELD_OUT, "customer_id"])
    assert 60 < len(held) < 140
    assert (first.loc[first["decision"] == d.HELD_OUT, "reason"] == d.HELD_OUT).all()
    news = first[first["campaign"] == "news"].set_index("customer_id")
    assert (news.loc[sorted(held), "decision"] == d.SELECTED).all()   # held out of thanks: free for news


def test_arm_weights_and_determinism():
    ids = np.arange(1, 120_001, dtype=np.int64)
    camp = campaigns({**NEWS, "arms": [{"name": "a", "weight": 1}, {"name": "b", "weight": 2},
                                       {"name": "c", "weight": 1, "subject": "subject_c"}]}).campaigns[0]
    arms = d.arm_names(camp, ids, SECRET)
    for name, share in (("a", 0.25), ("b", 0.5), ("c", 0.25)):
        assert binomtest(int((arms == name).sum()), len(ids), share).pvalue > 0.001
    assert np.array_equal(arms, d.arm_names(camp, ids, SECRET))
    holdout = d.held_out(campaigns({**NEWS, "holdout": 0.5}).campaigns[0], ids, SECRET)
    assert binomtest(int((arms[holdout] == "b").sum()), int(holdout.sum()), 0.5).pvalue > 0.001  # independent
    out = plan(campaigns({**NEWS, "arms": [{"name": "a", "weight": 1}, {"name": "b", "weight": 1}]}), shop(50))
    assert set(out["variant"]) == {"a", "b"}
    assert plan(campaigns(NEWS))["variant"].isna().all()


def test_offer_codes_are_personal_and_stable():
    camp = campaigns({**NEWS, "offer": {"prefix": "BACK"}}).campaigns[0]
    codes = d.offer_codes(camp, np.arange(1, 10_001), SECRET)
    assert len(set(codes)) == 10_000 and all(c.startswith("BACK-") and len(c) == 13 for c in codes)
    assert list(codes[:5]) == list(d.offer_codes(camp, np.arange(1, 6), SECRET))


def test_the_planners_secret_is_the_shops_one_secret_and_is_never_shown(tmp_path):
    from lojal.errors import TrackingConfigError
    from lojal.secrets import load_secrets

    paths = SimpleNamespace(state=tmp_path)
    with pytest.raises(TrackingConfigError) as info:
        d.shop_secret(paths, environ={"LOJAL_SECRET": "short-value"})
    assert "short-value" not in str(info.value)
    secret = d.shop_secret(paths, environ={"LOJAL_SECRET": "a-long-enough-secret-value-for-this-shop"})
    assert "a-long" not in repr(secret) and "a-long" not in str(secret)
    generated = d.shop_secret(paths, environ={})  # no variable: the store's generated secret.key
    assert generated.value == load_secrets(paths, environ={}).current == d.shop_secret(paths, environ={}).value


# --------------------------------------------------------------- local send time

def test_send_at_local_nine_per_zone_and_shop_default():
    data = shop(4, zones=["Europe/Oslo", "America/New_York", "", "Not/AZone"])
    config = campaigns({**NEWS, "send_time": {"at": "09:00"}})
    out = plan(config, data).set_index("customer_id")["send_at"]
    assert out[1] == pd.Timestamp("2026-11-24 08:00")   # 09:00 CET
    assert out[2] == pd.Timestamp("2026-11-24 14:00")   # 09:00 EST (it is 20:00 the day before there)
    assert out[3] == out[4] == pd.Timestamp("2026-11-24 08:00")  # no / unknown zone: the shop's


@pytest.mark.parametrize("now, zone, expected", [
    # Oslo, spring forward 2026-03-29 02:00 -> 03:00
    ("2026-03-28 01:00", "Europe/Oslo", "2026-03-28 08:00"),   # CET the day before
    ("2026-03-29 00:30", "Europe/Oslo", "2026-03-29 07:00"),   # planned 01:30 CET, sent 09:00 CEST
    # Oslo, fall back 2026-10-25 03:00 -> 02:00
    ("2026-10-24 23:30", "Europe/Oslo", "2026-10-25 08:00"),   # planned 01:30 CEST, sent 09:00 CET
    ("2026-10-24 01:00", "Europe/Oslo", "2026-10-24 07:00"),
    # New York, spring 2026-03-08 and fall 2026-11-01
    ("2026-03-08 05:00", "America/New_York", "2026-03-08 13:00"),  # planned 00:00 EST, sent 09:00 EDT
    ("2026-11-01 04:30", "America/New_York", "2026-11-01 14:00"),  # planned 00:30 EDT, sent 09:00 EST
    # planned after 09:00 local: tomorrow's 09:00, across the change
    ("2026-03-28 10:00", "Europe/Oslo", "2026-03-29 07:00"),
])
def test_send_at_across_both_dst_changes(now, zone, expected):
    data = shop(1, zones=[zone])
    config = campaigns({**NEWS, "send_time": {"at": "09:00", "window_hours": 30}})
    out = plan(config, data, now=pd.Timestamp(now))
    assert out["send_at"].iloc[0] == pd.Timestamp(expected)


def test_quiet_hours_push_and_send_window():
    data = shop(2, zones=["Europe/Oslo", "America/Sao_Paulo"])
    quiet = {"quiet_hours": {"start": "21:00", "end": "08:00"}}
    out = plan(campaigns(NEWS, **quiet), data).set_index("customer_id")
    assert out.loc[1, "send_at"] == pd.Timestamp("2026-11-24 07:00")   # 02:00 Oslo -> 08:00 CET
    assert out.loc[2, "send_at"] == pd.Timestamp("2026-11-24 11:00")   # 22:00 in Sao Paulo -> 08:00 (UTC-3)
    narrow = campaigns({**NEWS, "send_time": {"window_hours": 8}}, **quiet)
    out = plan(narrow, data).set_index("customer_id")
    assert out.loc[1, "decision"] == d.SELECTED                           # 6 hours away
    assert out.loc[2, "reason"] == d.PAST_SEND_WINDOW                     # 10 hours away
    assert "8-hour send window" in out.loc[2, "detail"]
    # outside quiet hours it goes now
    daytime = plan(campaigns(NEWS, **quiet), data, now=pd.Timestamp("2026-11-24 12:00")).set_index("customer_id")
    assert daytime.loc[1, "send_at"] == pd.Timestamp("2026-11-24 12:00")


def test_quiet_hours_ending_in_the_skipped_spring_hour():
    data = shop(1, zones=["Europe/Oslo"])
    config = campaigns(NEWS, quiet_hours={"start": "22:00", "end": "02:30"})
    out = plan(config, data, now=pd.Timestamp("2026-03-28 23:30"))   # 00:30 CET on the change night
    assert out["send_at"].iloc[0] == pd.Timestamp("2026-03-29 01:00")  # 02:30 does not exist: 03:00 CEST


def test_history_must_have_the_documented_columns():
    with pytest.raises(ValueError, match="accepted_at"):
        plan(campaigns(NEWS), hist=pd.DataFrame(columns=["campaign_id", "customer_id", "occasion_key", "state"]))


def test_funnel_counts_every_reason():
    data = shop(consent=[True, False, True, True, True, True])
    out = plan(campaigns(NEWS, {**THANKS, "segment": "some"}), data)
    table = d.funnel(out)
    assert table.loc["news", "considered"] == 6
    assert table.loc["news", d.LOWER_PRIORITY] == 1 and table.loc["news", d.NO_CONSENT] == 1
    assert table.loc["news", "selected"] == 4


def test_without_caps_holdouts_or_send_times_it_selects_what_the_former_planner_selected():
    """The retired priority/allowance planner selected exactly these on this shop."""
    data = shop(8, consent=[True, True, False, True, True, True, True, True],
                suppressed=frozenset({"c5@example.com"}))
    feats = features(data)
    member = pd.DataFrame({"everyone": True, "some": feats.index.isin([1, 2, 3, 6])}, index=feats.index)
    config = campaigns(NEWS, {**THANKS, "segment": "some"}, {**THANKS, "id": "survey", "priority": 50})
    sent = history(("survey", 4, "order:14", "sent", "2026-11-20 02:00", date(2026, 11, 20)),
                   ("thanks", 6, "order:16", "sent", "2026-11-20 02:00", date(2026, 11, 20)))
    out = plan(config, data, sent, feats=feats, member=member)
    new = {c: set(out[(out["campaign"] == c) & (out["decision"] == d.SELECTED)]["customer_id"])
           for c in ("thanks", "survey", "news")}
    assert new == {"thanks": {1, 2}, "survey": {6, 7, 8}, "news": {4}}  # 3: no consent, 5: suppressed


def test_an_aware_clock_means_the_same_moment():
    config = campaigns({**NEWS, "send_time": {"at": "09:00"}})
    aware = plan(config, now=pd.Timestamp("2026-11-24 02:00", tz="Europe/Oslo"))
    assert aware["send_at"].tolist() == plan(config)["send_at"].tolist()


@pytest.mark.slow
def test_plans_the_sample_shop_from_the_real_pipeline_stages(project):
    """decide() on what prepare_night really produces (features, segments, time zones), shipped config."""
    from lojal import pipeline
    from lojal.paths import Paths
    from lojal.sample.shop import generate_shop
    from lojal.sample.store import write_sample_shop
    from lojal.store import connect

    paths = Paths.resolve(project)
    write_sample_shop(connect(paths.database_url), generate_shop(800, seed=3, until=RUN), replace=False)
    loaded = pipeline.load_project(paths)
    night = pipeline.prepare_night(loaded, RUN)
    config = loaded.config
    out = decide(config.campaigns, night.data, night.features, night.membership, history(), now=NOW,
                 shop_timezone=config.brand.timezone, secret=SECRET, tier_order=[t.name for t in config.loyalty.tiers])
    matched = {c.id: int(night.membership[c.segment].sum()) for c in config.campaigns.enabled}
    assert out.groupby("campaign").size().to_dict() == {k: v for k, v in matched.items() if v}
    assert not out.duplicated(["customer_id", "campaign"]).any()
    chosen = out[out["decision"] == d.SELECTED]
    assert not chosen.duplicated("customer_id").any()              # one e-mail per customer tonight
    assert chosen["send_at"].between(NOW, NOW + pd.Timedelta(hours=72)).all()
    consented = night.data.customers["consent_email"]
    assert consented.reindex(chosen["customer_id"]).all()
    last_chance = chosen[chosen["campaign"] == "last_chance"]
    assert len(last_chance) > 10
    assert last_chance["offer_code"].str.startswith("BACK-").all()
    assert set(last_chance["variant"]) <= {"stay_in_touch", "last_hello"}
