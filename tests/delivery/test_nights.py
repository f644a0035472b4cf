"""Nights in sequence under Prefect: a message failed on night D and sent on D+1 counts for D+1
(the known defect), messages of a stopped night are sent late or expired by their campaign's
limit, and a stopped night followed by the next never re-sends what it delivered."""

from __future__ import annotations

import json
from collections import Counter
from datetime import date, timedelta

import pandas as pd
import pytest
import yaml

from lojal import ledger
from lojal.errors import DeliveryError
from lojal.paths import Paths
from lojal.sample import generate_shop
from lojal.sample.store import write_sample_shop
from lojal.store import connect

D = date(2026, 11, 24)
pytestmark = [pytest.mark.usefixtures("prefect_harness"), pytest.mark.slow]


@pytest.fixture(scope="module")
def shop():
    return generate_shop(600, seed=23, until=D)


@pytest.fixture
def filled(project, shop):
    write_sample_shop(connect(Paths.resolve(project).database_url), shop, replace=False)
    sender = project / "config" / "sender.yaml"
    settings = yaml.safe_load(sender.read_text())
    settings["delivery"]["batch_size"] = 40
    sender.write_text(yaml.safe_dump(settings))
    return project


def run(project, night: date, **kwargs) -> dict:
    from lojal.flows.nightly import nightly

    return nightly(run_date=night, project_dir=str(project), **kwargs)


def rows(project) -> pd.DataFrame:
    engine = connect(Paths.resolve(project).database_url)
    frame = ledger.states(engine)
    engine.dispose()
    for col in ("run_date", "accepted_on"):
        frame[col] = pd.to_datetime(frame[col]).dt.date
    return frame


def delivered_ids(project) -> list[str]:
    """Every message id the outbox ever wrote, over all nights (deliveries.jsonl logs first writes)."""
    ids = []
    for log in sorted((Paths.resolve(project).state / "outbox").glob("*/deliveries.jsonl")):
        ids += [json.loads(line)["message_id"] for line in log.read_text().splitlines()]
    return ids


def test_sent_late_counts_for_the_night_it_was_accepted_so_a_rerun_mails_no_one_twice(filled):
    with pytest.raises(DeliveryError, match="after 0 messages"):
        run(filled, D, fail_after=0)  # night D: nothing goes out (an outage)
    stopped = rows(filled)
    assert len(stopped) > 50 and not (stopped["state"] == "sent").any()

    next_night = run(filled, D + timedelta(days=1))
    assert next_night["reconciled"] == {"sending -> failed": int((stopped["state"] == "sending").sum())}
    late = sum(c["sent_late"] for c in next_night["campaigns"])
    after = rows(filled)
    from_d = after[after["run_date"] == D]
    assert late > 0 and late == int((from_d["state"] == "sent").sum())
    # the regression: accepted on D+1, so it counts for D+1, not for the night it was planned for
    assert (from_d.loc[from_d["state"] == "sent", "accepted_on"] == D + timedelta(days=1)).all()
    sent = after[after["state"] == "sent"]
    assert not sent.duplicated(["customer_id", "accepted_on"]).any(), "at most one e-mail per customer per night"

    rerun = run(filled, D + timedelta(days=1))
    assert sum(c["delivered"] for c in rerun["campaigns"]) == 0
    assert len(rows(filled)) == len(after)
    ids = delivered_ids(filled)
    assert len(ids) == len(set(ids)) == len(sent)


def test_a_stopped_night_is_sent_late_or_expired_and_never_resent(filled):
    campaigns = filled / "config" / "campaigns.yaml"
    config = yaml.safe_load(campaigns.read_text())
    for campaign in config["campaigns"]:
        if campaign["id"] == "win_back":  # the lowest priority: surely not sent before the stop
            campaign["send_within_days"] = 2
    campaigns.write_text(yaml.safe_dump(config))
    limits = {c["id"]: c.get("send_within_days", 7) for c in config["campaigns"]}
    with pytest.raises(DeliveryError, match="after 30 messages"):
        run(filled, D, fail_after=30)
    stopped = rows(filled)
    delivered_on_d = set(delivered_ids(filled))
    assert len(delivered_on_d) == 30

    later = run(filled, D + timedelta(days=4))  # a schedule resumes four nights later
    after = rows(filled)
    from_d = after[after["run_date"] == D].set_index("message_id")
    assert len(stopped) == len(from_d)
    # what night D delivered but had not marked is reconciled, never handed over again
    assert (from_d.loc[list(delivered_on_d), "state"] == "sent").all()
    assert (from_d.loc[list(delivered_on_d), "accepted_on"] == D).all()
    ids = delivered_ids(filled)
    assert len(ids) == len(set(ids)), "a message of night D delivered twice"
    assert not after[after["state"] == "sent"].duplicated(["campaign_id", "customer_id", "occasion_key"]).any()
    # the rest: sent late on D+4 within the campaign's send_within_days, else expired with the reason
    unsent = from_d[~from_d.index.isin(delivered_on_d) & (from_d["state"] != "held_out")]
    expected = unsent["campaign_id"].map(lambda c: "expired" if 4 > limits[c] else "sent")
    assert (unsent["state"] == expected).all(), Counter(zip(unsent["campaign_id"], unsent["state"]))
    assert (unsent.loc[expected == "sent", "accepted_on"] == D + timedelta(days=4)).all()
    expired = unsent[unsent["state"] == "expired"]
    assert (expired["campaign_id"] == "win_back").sum() > 0
    assert expired["error"].str.startswith("not sent within send_within_days").all()
    assert sum(c["expired"] for c in later["campaigns"]) == len(expired)
    assert sum(c["sent_late"] for c in later["campaigns"]) == int((expected == "sent").sum())
