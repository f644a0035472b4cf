"""The pipeline's stages without Prefect: what goes into each message."""

from __future__ import annotations

import re
from datetime import date

import pandas as pd

from lojal import pipeline
from lojal.features import compute_features
from lojal.paths import Paths
from lojal.reco.recommender import fit_recommender
from lojal.reco.repurchase import fit_repurchase
from lojal.reco.strategies import RecoParams
from lojal.runlog import previous_completed_run
from lojal.sample import generate_shop
from lojal.sample.store import write_sample_shop
from lojal.segments import evaluate_segments
from lojal.store import connect
from lojal.tracking.tokens import verify_unsubscribe_token

RUN_DATE = date(2026, 11, 24)


def _prepared(project):
    paths = Paths.resolve(project)
    write_sample_shop(connect(paths.database_url), generate_shop(2500, seed=21, until=RUN_DATE), replace=False)
    loaded = pipeline.load_project(paths)
    return loaded, pipeline.prepare_night(loaded, RUN_DATE)


def _night(project):
    _, night = _prepared(project)
    night.plans = pipeline.plan_campaigns(night)
    return night


RECOMMENDED = re.compile(r'href="https://nordlys\.example/p/([a-z0-9-]+)\?[^"]*utm_content=product-\d[&"]')


def recommended_skus(message) -> set[str]:
    return {sku.upper() for sku in RECOMMENDED.findall(message.html)}


def messages_of(night, campaign_id):
    plan = next(p for p in night.plans if p.campaign.id == campaign_id)
    messages, failures = pipeline.build_messages(night, plan.campaign, plan.pending)
    assert not failures
    return plan, messages


def test_what_each_campaign_recommends(project):
    night = _night(project)
    items = night.data.lines.groupby("order_id")["sku"].agg(set)
    last_order = night.features["last_order_id"]

    plan, messages = messages_of(night, "post_purchase")
    assert messages
    for message in messages:
        bought = items[int(last_order[message.customer_id])]
        shown = recommended_skus(message)
        assert len(shown) == 4, "four recommended products"
        assert not shown & bought, "never the items of the order being thanked for"

    _plan, messages = messages_of(night, "replenishment")
    due_again = 0
    for message in messages:
        bought = items[int(last_order[message.customer_id])]
        due_again += bool(recommended_skus(message) & bought)
    assert due_again > len(messages) / 2, "replenishment e-mails may show what is due again"

    _plan, messages = messages_of(night, "win_back")
    english = [m for m in messages if night.data.customers.at[m.customer_id, "locale"] == "en"]
    assert any("You have bought this before" in m.text or "Trending" in m.text for m in english)
    for message in messages[:20]:
        assert message.custom_args["lojal_campaign"] == "win_back"
        assert message.headers["List-Unsubscribe"].startswith("<https://nordlys.example/unsubscribe/")
        token = message.headers["List-Unsubscribe"][1:-1].rsplit("/", 1)[1]
        assert f"/unsubscribe/{token}" in message.html  # the footer link is the header's signed URL
        signed = verify_unsubscribe_token(token, night.secrets)
        assert (signed.message_id, signed.email) == (message.message_id, message.to_email)


def test_every_campaign_carries_recommendations_with_their_reasons(project):
    import yaml

    night = _night(project)
    reasons = yaml.safe_load((project / "templates" / "_shared" / "strings.yaml").read_text())["reasons"]
    english_openings = [text["en"].split("{")[0].strip() for text in reasons.values()]
    for plan in night.plans:
        if plan.pending.empty:
            continue
        _plan, messages = messages_of(night, plan.campaign.id)
        slots = plan.campaign.recommendations.total_slots
        assert all(len(recommended_skus(m)) == slots for m in messages), plan.campaign.id
        english = [m for m in messages if night.data.customers.at[m.customer_id, "locale"] == "en"]
        for message in english:
            assert sum(message.text.count(opening) for opening in english_openings) >= slots, plan.campaign.id


def test_previous_completed_run_ignores_failed_and_later_runs(tmp_path):
    from lojal import runlog
    from lojal.store import connect, init_schema

    engine = connect(f"sqlite:///{tmp_path / 'runs.db'}")
    init_schema(engine)
    assert runlog.previous_completed_run(engine, date(2026, 11, 24)) is None
    for day, status in ((date(2026, 11, 20), "completed"), (date(2026, 11, 22), "failed"),
                        (date(2026, 11, 24), "completed"), (date(2026, 11, 26), "completed")):
        runlog.finish_run(engine, runlog.start_run(engine, day), status)
    assert runlog.previous_completed_run(engine, date(2026, 11, 24)) == date(2026, 11, 20)
    assert runlog.previous_completed_run(engine, date(2026, 11, 25)) == date(2026, 11, 24)
    engine.dispose()


def test_the_night_prepared_with_the_fit_beside_the_rest_equals_the_one_prepared_step_by_step(project):
    # prepare_night fits the repurchase model in a thread while the other features and strategies
    # are computed; the result must be what one step after another gives.
    loaded, night = _prepared(project)
    data = night.data
    fit = fit_repurchase(data.lines, data.as_of, RecoParams().repurchase)
    features = compute_features(data, loaded.config.loyalty, previous_completed_run(night.engine, RUN_DATE),
                                repurchase=fit)
    assert features["reorder_probability"].notna().sum() > 100  # the fit's scores are in the features
    pd.testing.assert_frame_equal(night.features, features, check_exact=True)
    pd.testing.assert_frame_equal(night.membership, evaluate_segments(loaded.segments, features, data))
    step_by_step = fit_recommender(data, repurchase=fit).model
    for name in ("due", "interval_days", "neighbours", "category_share", "ease_history"):
        ours, theirs = getattr(night.recommender.model, name), getattr(step_by_step, name)
        assert ours.shape == theirs.shape and (ours != theirs).nnz == 0, name
    assert step_by_step.due.nnz > 100


def test_a_campaigns_batches_are_even_and_as_many_as_a_multiple_of_the_batches_running_at_once():
    rows = pd.DataFrame({"message_id": [f"m{i}" for i in range(89_550)]})
    parts = pipeline.batches(rows, 4_000, 4)
    sizes = [len(p) for p in parts]
    assert len(parts) == 24 and max(sizes) <= 4_000 and max(sizes) - min(sizes) <= 1
    assert pd.concat(parts)["message_id"].tolist() == rows["message_id"].tolist()  # each row once, in order
    assert [len(p) for p in pipeline.batches(rows.iloc[:661], 1_000, 4)] == [165, 165, 166, 165]
    # never cut below a tenth of the batch size, however many run at once
    assert [len(p) for p in pipeline.batches(rows.iloc[:150], 1_000, 4)] == [150]
    assert [len(p) for p in pipeline.batches(rows.iloc[:2_500], 1_000, 1)] == [833, 834, 833]
    assert pipeline.batches(rows.iloc[:0], 1_000, 4) == []
