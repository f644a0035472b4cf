"""Real runs plan with lojal.decisions.decide (without Prefect, a small shop): ledger rows from the
decisions (planned, held_out) with what each send is made of, caps counted on accepted times,
occasion keys across repeated and back-dated nights, dry runs, --campaign, plan diff, and
`lojal ledger show --render` re-rendering a sent e-mail byte for byte."""

from __future__ import annotations

import json
from datetime import date, timedelta

import pandas as pd
import pytest
from sqlalchemy import func, select, update
from typer.testing import CliRunner

from lojal import decisions, ledger, pipeline, plans
from lojal.cli import app
from lojal.delivery import backend_for
from lojal.paths import Paths
from lojal.sample import generate_shop
from lojal.sample.store import write_sample_shop
from lojal.store import connect
from lojal.store.schema import send_ledger

D = date(2026, 11, 24)


@pytest.fixture(scope="module")
def shop():
    return generate_shop(400, seed=31, until=D + timedelta(days=2))


@pytest.fixture
def store(project, shop):
    paths = Paths.resolve(project)
    engine = connect(paths.database_url)
    write_sample_shop(engine, shop, replace=False)
    yield paths, engine
    engine.dispose()


def night_of(paths: Paths, night: date, now: pd.Timestamp | None = None) -> pipeline.Night:
    prepared = pipeline.prepare_night(pipeline.load_project(paths), night)
    prepared.now = now
    return prepared


def ledger_rows(engine) -> pd.DataFrame:
    return ledger.states(engine)


def ledger_count(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(send_ledger)).scalar_one()


def send_all(night: pipeline.Night) -> int:
    """Build and hand every pending message to the outbox, as the flow's batches do."""
    backend = backend_for(night.project.config, night.project.paths, night.run_date, "outbox")
    settings = night.project.config.sender.delivery
    sent = 0
    for plan in night.plans:
        messages, failures = pipeline.build_messages(night, plan.campaign, plan.pending)
        assert not failures, failures
        sent += pipeline.deliver(night.engine, backend, messages, night.run_date, settings).delivered
    backend.finish()
    return sent


def test_real_run_records_decisions_with_priority_holdouts_and_what_each_send_is_made_of(store):
    paths, engine = store
    night = night_of(paths, D)
    night.plans = pipeline.plan_campaigns(night)
    log, rows = night.decisions, ledger_rows(engine)
    # one ledger row per selected or held-out decision, nothing for the excluded
    chosen = log[log["decision"] != decisions.EXCLUDED]
    assert len(rows) == len(chosen) > 50
    held = rows[rows["state"] == ledger.HELD_OUT]
    assert len(held) == int((log["decision"] == decisions.HELD_OUT).sum()) > 0
    assert (rows.loc[rows["state"] != ledger.HELD_OUT, "state"] == ledger.PLANNED).all()
    # priority arbitration: at most one planned e-mail per customer tonight; the loser names the winner
    planned = rows[rows["state"] == ledger.PLANNED]
    assert not planned["customer_id"].duplicated().any()
    priority = {c.id: c.priority for c in night.project.config.campaigns.enabled}
    lower = log[log["reason"] == decisions.LOWER_PRIORITY]
    assert len(lower) > 0
    for detail, campaign in zip(lower["detail"], lower["campaign"]):
        if detail.startswith(decisions.HIGHER_PRIORITY):
            assert priority[detail.split()[2]] > priority[campaign]
    # held-out rows are never pending, so never built or sent
    pending = pd.concat([p.pending for p in night.plans])
    assert not set(pending["message_id"]) & set(held["message_id"])
    # what each send is made of: variant and offer code of last_chance, items with strategy/score/reason
    record = ledger.record(engine, planned["message_id"].iloc[0])
    made = record["made_from"]
    assert made["files"] and all(len(digest) == 64 for digest in made["files"].values() if digest)
    assert any(name.startswith("segments/") for name in made["files"])
    if night.project.config.campaign(record["campaign_id"]).recommendations:
        assert made["items"] and {"sku", "strategy", "score", "reason_code"} <= set(made["items"][0])
    last = rows[(rows["campaign_id"] == "last_chance") & (rows["state"] == ledger.PLANNED)]
    assert len(last) > 0 and last["variant"].isin(["stay_in_touch", "last_hello"]).all()
    assert last["offer_code"].str.match(r"^BACK-[0-9A-Z]{8}$").all() and last["send_at"].notna().all()
    # the message carries its variant (categories, custom_args) and its send time
    plan = next(p for p in night.plans if p.campaign.id == "last_chance")
    messages, _ = pipeline.build_messages(night, plan.campaign, plan.pending.head(6))
    for message in messages:
        variant = message.custom_args["lojal_variant"]
        assert f"lojal-last_chance-{variant}" in message.categories
        code = last.set_index("message_id").loc[message.message_id, "offer_code"]
        assert code in message.html
    # the arm's subject string (subject_urgent) is the subject of its e-mails
    by_variant = {}
    for message in messages:
        by_variant.setdefault(message.custom_args["lojal_variant"], set()).add(message.subject.split(",")[-1].strip())
    compiled = night.project.templates.compiled[("last_chance", "en")]
    assert "subject_urgent" in compiled.subjects
    if len(by_variant) == 2:
        assert not by_variant["last_hello"] & by_variant["stay_in_touch"]


def test_rerun_and_back_dated_run_mail_nobody_twice_and_held_out_stays_held_out(store):
    paths, engine = store
    night = night_of(paths, D)
    night.plans = pipeline.plan_campaigns(night)
    assert send_all(night) > 0
    before = ledger_rows(engine)

    rerun = night_of(paths, D)
    rerun.plans = pipeline.plan_campaigns(rerun)
    assert sum(len(p.pending) for p in rerun.plans) == 0  # nothing freed, nothing twice
    after = ledger_rows(engine)
    assert len(after) == len(before) and (after["state"].value_counts() == before["state"].value_counts()).all()
    assert (rerun.decisions["reason"] == decisions.SENT_TONIGHT).sum() == int((before["state"] == "sent").sum())

    # a back-dated run (the night before) finds the same occasions received (or held out) already
    earlier = night_of(paths, D - timedelta(days=1))
    earlier.plans = pipeline.plan_campaigns(earlier)
    log = earlier.decisions.merge(before[["campaign_id", "customer_id", "occasion_key", "state"]],
                                  left_on=["campaign", "customer_id", "occasion_key"],
                                  right_on=["campaign_id", "customer_id", "occasion_key"])
    assert len(log) > 0 and (log["reason"] == decisions.ALREADY_RECEIVED).all()
    held = log[log["state"] == ledger.HELD_OUT]
    assert len(held) > 0  # a held-out customer stays held out of that occasion


def test_caps_count_what_was_accepted_by_when_it_was_accepted(store):
    paths, engine = store
    moment = pd.Timestamp(D + timedelta(days=4)) + pd.Timedelta(hours=6)  # planning D+4 at 06:00 UTC
    night = night_of(paths, D + timedelta(days=4), now=moment)
    exempt = {c.id for c in night.project.config.campaigns.campaigns if c.exempt_from_caps}
    log = pipeline.decide_night(night)
    chosen = log[(log["decision"] == decisions.SELECTED) & ~log["campaign"].isin(exempt)]
    a, b = (int(c) for c in chosen["customer_id"].drop_duplicates().head(2))
    # a: planned four nights ago, accepted yesterday 20:00 (10 hours ago) -> counts against 1 per 16 hours
    # b: planned yesterday, accepted yesterday 00:30 (29.5 hours ago) -> does not
    for customer, planned_on, at in ((a, D, moment - pd.Timedelta(hours=10)),
                                     (b, D + timedelta(days=3), moment - pd.Timedelta(hours=29, minutes=30))):
        row = ledger.plan(engine, "older_news", planned_on, pd.DataFrame({"customer_id": [customer], "occasion_key": ["once"]}))
        with engine.begin() as conn:
            conn.execute(update(send_ledger).where(send_ledger.c.message_id == row["message_id"].iloc[0]).values(
                state="sent", accepted_at=at.to_pydatetime(), accepted_on=at.date(), attempts=1))
    again = pipeline.decide_night(night)
    night.engine.dispose()
    mine = again.set_index(["customer_id", "campaign"])
    first_a = chosen.loc[chosen["customer_id"] == a, "campaign"].iloc[0]
    first_b = chosen.loc[chosen["customer_id"] == b, "campaign"].iloc[0]
    assert mine.loc[(a, first_a), "reason"] == decisions.CAPPED
    assert "16 hours" in mine.loc[(a, first_a), "detail"]
    assert mine.loc[(b, first_b), "decision"] == decisions.SELECTED


def test_dry_run_writes_its_plan_and_nothing_else_and_plan_diff_compares_nights(store):
    paths, engine = store
    assert ledger_count(engine) == 0
    first = plans.dry_run(paths, D)
    second = plans.dry_run(paths, D + timedelta(days=1))
    assert ledger_count(engine) == 0  # no ledger row, nothing sent
    assert not (paths.state / "outbox").exists()
    log = pd.read_parquet(first["plan"])
    assert {"customer_id", "campaign", "decision", "reason", "variant", "send_at", "offer_code"} <= set(log.columns)
    assert len(pd.read_csv(first["plan_csv"])) == len(log)
    funnel = {row["campaign"]: row for row in first["funnel"]}
    shipped = {c.id for c in pipeline.load_project(paths).config.campaigns.enabled}
    counted = set(log["campaign"])
    assert counted <= shipped and set(funnel) == counted
    for campaign, row in funnel.items():
        mine = log[log["campaign"] == campaign]
        assert row["considered"] == len(mine)
        assert row["selected"] == int((mine["decision"] == "selected").sum())

    result = plans.diff(plans.read_plan(paths, D), plans.read_plan(paths, D + timedelta(days=1)))
    after = pd.read_parquet(second["plan"])
    for campaign, row in result.counts.iterrows():
        assert row["selected_after"] - row["selected_before"] == row["entered"] - row["left"], campaign
    entered = result.changes[result.changes["change"] == "entered"]
    assert len(result.changes) > 0
    for row in entered.head(20).itertuples():
        mine = after[(after["campaign"] == row.campaign) & (after["customer_id"] == row.customer_id)]
        assert mine["decision"].iloc[0] == "selected"
    shown = CliRunner().invoke(app, ["plan", "diff", str(D), str(D + timedelta(days=1)), "--project", str(paths.project)])
    assert shown.exit_code == 0, shown.output
    assert "entered" in shown.output
    missing = CliRunner().invoke(app, ["plan", "diff", str(D), "2020-01-01", "--project", str(paths.project)])
    assert missing.exit_code != 0 and "lojal run --date 2020-01-01 --dry-run" in str(missing.exception)


def test_one_campaign_runs_alone(store):
    paths, engine = store
    night = night_of(paths, D)
    night.plans = pipeline.plan_campaigns(night, only="win_back")
    rows = ledger_rows(engine)
    assert len(rows) > 0 and set(rows["campaign_id"]) == {"win_back"}
    assert [p.campaign.id for p in night.plans] == ["win_back"]
    with pytest.raises(Exception, match="no enabled campaign has this id"):
        plans.check_campaign(night.project.config, "win_bak")


def test_ledger_show_renders_a_sent_email_again_byte_for_byte_or_names_the_changed_file(store):
    paths, engine = store
    night = night_of(paths, D)
    night.plans = pipeline.plan_campaigns(night, only="last_chance")
    assert send_all(night) > 0
    sent = ledger_rows(engine)
    message_id = sent.loc[sent["state"] == "sent", "message_id"].iloc[0]
    outbox = next((paths.state / "outbox").glob(f"*/last_chance/{message_id}.html")).read_text(encoding="utf-8")

    again = pipeline.rerender(paths, message_id)
    assert again.changed == [] and again.message.html == outbox
    shown = CliRunner().invoke(app, ["ledger", "show", message_id, "--render", "--project", str(paths.project)])
    assert shown.exit_code == 0, shown.output
    assert "byte-identical" in shown.output and "strategy=" in shown.output and "offer_code" in shown.output

    strings = paths.project / "templates" / "last_chance" / "strings.yaml"
    strings.write_text(strings.read_text(encoding="utf-8").replace("Your personal code", "Your own code"),
                       encoding="utf-8")
    changed = pipeline.rerender(paths, message_id)
    assert changed.changed == ["templates/last_chance/strings.yaml"]


def test_a_workers_partial_night_holds_no_customer_and_renders_what_the_whole_night_renders(
        project, shop, database_url, monkeypatch):
    """What a Dask worker prepares (pipeline.prepare_rendering_night): the catalogue alone; each batch
    reads its customers and last orders by key, and the customer's features come from `made_from`,
    recorded at planning. Every planned message is the same, byte for byte, as the whole night's.
    A row planned before Lojal recorded them asks for the whole night (needs_whole_night)."""
    from lojal.features import RENDERING_FEATURES
    from lojal.runner import load_batch

    monkeypatch.setenv("LOJAL_DATABASE_URL", database_url)
    paths = Paths.resolve(project)
    engine = connect(database_url)
    write_sample_shop(engine, shop, replace=False)
    night = night_of(paths, D)
    night.plans = pipeline.plan_campaigns(night)
    partial = pipeline.prepare_rendering_night(night.project, D)
    assert partial.partial and partial.features is None
    assert partial.data.customers.empty and partial.data.orders.empty and partial.data.lines.empty
    assert len(partial.data.products) == len(night.data.products) > 0
    compared = 0
    for plan in night.plans:
        if plan.pending.empty:
            continue
        _, batch = load_batch(partial, plan.campaign.id, plan.pending["message_id"].tolist())
        assert not pipeline.needs_whole_night(partial, batch)
        whole, whole_failures = pipeline.build_messages(night, plan.campaign, plan.pending)
        parts, part_failures = pipeline.build_messages(partial, plan.campaign, batch)
        assert parts == whole and part_failures == whole_failures == {}
        compared += len(parts)
    assert compared > 50 and partial.data.customers.empty  # nothing of the shop kept between batches
    # the recorded context is the night's features of that customer
    row = ledger.states(engine).query("state == 'planned'").iloc[0]
    recorded = ledger.record(engine, row["message_id"])["made_from"]["customer"]
    expected = night.features.loc[row["customer_id"], list(RENDERING_FEATURES)]
    assert recorded["order_count"] == expected["order_count"] and recorded["tier"] == expected["tier"]
    assert recorded["last_order_id"] == (None if pd.isna(expected["last_order_id"]) else int(expected["last_order_id"]))
    # a row planned before the context was recorded: the worker must read the whole night for it, and
    # the night's features give the same e-mail the recorded ones gave
    campaign = night.project.config.campaign(row["campaign_id"])
    [recorded_message], _ = pipeline.build_messages(partial, campaign, load_batch(partial, campaign.id, [row["message_id"]])[1])
    made = ledger.record(engine, row["message_id"])["made_from"]
    del made["customer"]
    with engine.begin() as conn:
        conn.execute(update(send_ledger).where(send_ledger.c.message_id == row["message_id"])
                     .values(made_from=json.dumps(made)))
    _, old = load_batch(partial, row["campaign_id"], [row["message_id"]])
    assert pipeline.needs_whole_night(partial, old) and not pipeline.needs_whole_night(night, old)
    [again], failures = pipeline.build_messages(night, campaign, old)
    assert not failures and again == recorded_message
    partial.engine.dispose()
    engine.dispose()


@pytest.mark.usefixtures("prefect_harness")
def test_lojal_run_dry_run_prints_the_funnel_and_writes_no_ledger_row(store):
    paths, engine = store
    result = CliRunner().invoke(app, ["run", "--date", str(D), "--dry-run", "--campaign", "last_chance",
                                      "--project", str(paths.project)])
    assert result.exit_code == 0, result.output
    assert "dry run: nothing sent" in result.output and "last_chance" in result.output
    assert ledger_count(engine) == 0
    log = pd.read_csv(plans.plan_dir(paths, D) / "decisions.csv")
    assert set(log["campaign"]) == {"last_chance"} and (log["decision"] == "held_out").any()


def test_a_recorded_made_from_reads_back_as_json_wrote_it_nan_included():
    import json
    import math

    from lojal.pipeline import _made_from_json

    record = {"files": {"templates/thank_you/email.mjml": "ab" * 32}, "variant": None,
              "items": [{"sku": "KAFFE-1", "title": "Økologisk kaffe ☕", "price": 149.5, "score": 0.1234567890123}]}
    assert _made_from_json(json.dumps(record, sort_keys=True)) == record
    odd = _made_from_json(json.dumps({"items": [{"sku": "X", "price": float("nan")}]}))  # json writes NaN; orjson refuses it
    assert odd["items"][0]["sku"] == "X" and math.isnan(odd["items"][0]["price"])


def test_made_from_is_written_as_json_would_read_it_with_sorted_keys():
    import json
    from datetime import date, datetime

    import numpy as np

    from lojal.pipeline import _made_from_text

    record = {"variant": "b", "files": {"z.yaml": None, "a.mjml": "ff" * 32},
              "items": [{"sku": "KAFFE-1", "price": np.float64(149.5), "times": np.int64(3), "title": "Kaffe ☕",
                         "reason_params": {"product": "Te", "days": 30.0}, "bought": date(2026, 11, 2),
                         "seen": datetime(2026, 11, 2, 8, 30, 1, 250)}]}
    text = _made_from_text(record)
    assert json.loads(text) == json.loads(json.dumps(record, default=lambda v: v.item() if isinstance(v, np.generic)
                                                     else v.isoformat()))
    assert text.index('"files"') < text.index('"items"') < text.index('"variant"')  # keys sorted, as before
    big = _made_from_text({"items": [{"id": 2 ** 70}]})  # past orjson's 64 bits: json writes it
    assert json.loads(big) == {"items": [{"id": 2 ** 70}]}
