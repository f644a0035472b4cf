"""`lojal preview --customer` and `lojal send-test` (lojal.proof) on a small sample shop: what one
real customer gets tonight (or why nothing), and proofs marked as tests that never touch the ledger."""

from __future__ import annotations

import json
import shutil
from datetime import date, datetime, timezone
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from lojal import decisions, ledger, pipeline, proof
from lojal.cli import app
from lojal.delivery.base import DeliveryResult
from lojal.errors import AddressError, ProofError
from lojal.paths import Paths
from lojal.store import connect
from lojal.store.schema import send_ledger

REPO = Path(__file__).resolve().parents[1]
RUN = date(2026, 11, 24)
SECRET = "proof-test-secret-0123456789-at-least-32-chars"
runner = CliRunner()


@pytest.fixture(scope="module")
def shop(tmp_path_factory) -> Paths:
    """The shipped marketer files (as the `project` fixture copies them) with a 400-customer sample shop;
    built once for the module: every test here only reads it, or restores what it wrote."""
    from lojal.sample import generate_shop
    from lojal.sample.store import write_sample_shop

    root = tmp_path_factory.mktemp("proof")
    for folder in ("config", "segments", "templates"):
        shutil.copytree(REPO / folder, root / "project" / folder)
    paths = Paths(root / "project", root / "state")
    write_sample_shop(connect(paths.database_url), generate_shop(400, seed=3, until=RUN), replace=False)
    return paths


@pytest.fixture(scope="module")
def night(shop):
    loaded = pipeline.load_project(shop)
    return loaded, pipeline.prepare_night(loaded, RUN)


@pytest.fixture(scope="module")
def tonight(night) -> pd.DataFrame:
    """Every customer's decisions as the nightly planner makes them over the whole shop."""
    loaded, prepared = night
    config = loaded.config
    return decisions.decide(config.campaigns, prepared.data, prepared.features, prepared.membership,
                            pd.DataFrame(columns=[*decisions.HISTORY_COLUMNS, "run_date"]),
                            now=proof.planning_moment(config, RUN), shop_timezone=config.brand.timezone,
                            secret=decisions.ShopSecret(SECRET.encode()), tier_order=[t.name for t in config.loyalty.tiers])


@pytest.fixture
def env(shop, monkeypatch):
    monkeypatch.setenv("LOJAL_HOME", str(shop.state))
    monkeypatch.setenv("LOJAL_SECRET", SECRET)
    monkeypatch.delenv("LOJAL_DATABASE_URL", raising=False)
    return shop


def ledger_rows(paths: Paths) -> int:
    with connect(paths.database_url).connect() as conn:
        return conn.execute(select(func.count()).select_from(send_ledger)).scalar_one()


def invoke(paths: Paths, *args: str):
    return runner.invoke(app, [*args, "--project", str(paths.project)])


def failure(result) -> str:
    """What `lojal` prints for a failed command: usage errors in the output; a LojalError (raised out of
    the app under CliRunner) is printed by `lojal.cli.main` as `error: <message>`."""
    assert result.exit_code != 0, result.output
    return result.output + (f"error: {result.exception}" if result.exception else "")


def pick(tonight: pd.DataFrame, decision: str, campaign: str | None = None, reason: str | None = None) -> int:
    rows = tonight[tonight["decision"] == decision]
    if campaign:
        rows = rows[rows["campaign"] == campaign]
    if reason:
        rows = rows[rows["reason"] == reason]
    assert len(rows), (decision, campaign, reason)
    return int(rows["customer_id"].iloc[0])


def test_one_customers_decisions_are_the_whole_nights(night, tonight):
    """Deciding over one customer gives exactly the rows the planner gives them over the whole shop."""
    loaded, prepared = night
    secret = decisions.ShopSecret(SECRET.encode())
    now = proof.planning_moment(loaded.config, RUN)
    empty = proof.ledger_history(connect(loaded.paths.database_url), -1)
    sampled = pd.concat([tonight[tonight["decision"] == kind].head(8) for kind in ("selected", "held_out", "excluded")])
    assert set(sampled["decision"]) == {"selected", "held_out", "excluded"}
    for customer_id in sampled["customer_id"].unique():
        mine = {d.campaign_id: d for d in proof.customer_decisions(loaded.config, prepared, int(customer_id), empty,
                                                                    now, secret)}
        for row in tonight[tonight["customer_id"] == customer_id].to_dict("records"):
            d = mine[row["campaign"]]
            assert (d.decision, d.reason, d.variant, d.offer_code) == (
                row["decision"], row["reason"], row["variant"], row["offer_code"]), (customer_id, row)
            assert d.send_at == (None if pd.isna(row["send_at"]) else row["send_at"].to_pydatetime())
        others = set(mine) - set(tonight.loc[tonight["customer_id"] == customer_id, "campaign"])
        assert all(mine[c].decision == proof.NOT_IN_SEGMENT for c in others)


def test_preview_of_a_selected_customer_shows_subject_products_and_send_time(env, night, tonight):
    """The whole command, once: the store read again, the e-mail written to files, no ledger row."""
    customer_id = pick(tonight, "selected", "post_purchase")
    before = ledger_rows(env)
    result = invoke(env, "preview", "--customer", str(customer_id), "--date", RUN.isoformat())
    assert result.exit_code == 0, result.output
    chosen = proof.customer_preview(night[1], customer_id, proof.ledger_history(connect(env.database_url), customer_id),
                                    decisions.ShopSecret(SECRET.encode()))
    chosen.files = proof.write_proofs(chosen, env.state / "preview" / f"customer-{customer_id}")
    [shown] = chosen.shown
    made = chosen.proofs["post_purchase"]
    assert shown.campaign_id == "post_purchase" and made.recommendations
    out = result.output
    assert f"subject:   {made.subject}" in out
    for item in made.recommendations:
        assert f"{item['title']} ({item['sku']})" in out
    local = shown.send_at_local
    assert f"send at:   {local:%Y-%m-%d %H:%M} {shown.zone} ({shown.send_at:%Y-%m-%d %H:%M} UTC)" in out
    html_file, text_file = chosen.files["post_purchase"]
    html = html_file.read_text(encoding="utf-8")
    assert str(html_file) in out and made.recommendations[0]["title"].split()[0] in html
    assert text_file.read_text(encoding="utf-8").startswith(f"Subject: {made.subject}\n")
    assert ledger_rows(env) == before


def lines(night, customer_id: int, campaign: str | None = None, history: pd.DataFrame | None = None) -> str:
    """`lojal preview --customer` output over the module's prepared night (no CLI, no re-preparation)."""
    from lojal.proof_cli import preview_lines

    history = proof.ledger_history(connect(night.project.paths.database_url), customer_id) if history is None else history
    result = proof.customer_preview(night, customer_id, history, decisions.ShopSecret(SECRET.encode()), campaign)
    return "\n".join(preview_lines(result))


def test_a_customer_is_found_by_id_or_by_email_in_any_case(env, night, tonight):
    customer_id = pick(tonight, "selected", "post_purchase")
    email = night[1].data.customers.loc[customer_id, "email"]
    engine = connect(env.database_url)
    assert proof.find_customer(engine, f" {email.upper()} ") == customer_id == proof.find_customer(engine, str(customer_id))


def test_preview_of_an_excluded_customer_shows_the_reason(night, tonight):
    customer_id = pick(tonight, "excluded", reason=decisions.NO_CONSENT)
    out = lines(night[1], customer_id)
    assert "They get nothing tonight: " in out
    assert f"excluded: {decisions.REASONS[decisions.NO_CONSENT]}" in out
    assert "subject:" not in out


def test_preview_of_one_campaign_they_are_not_in(night, tonight):
    customer_id = pick(tonight, "selected", "post_purchase")
    out = lines(night[1], customer_id, "birthday")
    assert "birthday (Happy birthday): they get nothing from it tonight: not in the segment 'birthday_today'" in out
    assert "subject:" not in out


def test_preview_reads_the_ledger_an_earlier_night_sent_it(env, night, tonight):
    """History counts: a thank-you already sent for this order on an earlier night is not sent again."""
    engine = connect(env.database_url)
    row = tonight[(tonight["decision"] == "selected") & (tonight["campaign"] == "post_purchase")].iloc[0]
    customer_id, key = int(row["customer_id"]), row["occasion_key"]
    planned = ledger.plan(engine, "post_purchase", date(2026, 11, 23),
                          pd.DataFrame({"customer_id": [customer_id], "occasion_key": [key]}))
    message_id = planned["message_id"].iloc[0]
    try:
        ledger.claim(engine, [message_id], date(2026, 11, 23), "outbox")
        accepted = datetime(2026, 11, 23, 9, 0)
        ledger.settle(engine, [DeliveryResult(message_id, "sent", "x.eml", accepted_at=accepted)], {message_id: 1},
                      date(2026, 11, 23), 3)
        out = lines(night[1], customer_id)
    finally:
        with engine.begin() as conn:
            conn.execute(send_ledger.delete().where(send_ledger.c.message_id == message_id))
    line = next(line for line in out.splitlines() if line.strip().startswith("post_purchase "))
    assert decisions.REASONS[decisions.ALREADY_RECEIVED] in line
    assert "the run of 2026-11-23 recorded it: sent" in line


def test_an_unknown_customer_is_one_clear_error(env, night):
    result = invoke(env, "preview", "--customer", "99999999")
    assert "--customer 99999999: there is no customer with id 99999999 in the store" in failure(result)
    email = night[1].data.customers["email"].iloc[0]
    typo = email.replace("@", "x@", 1)
    with pytest.raises(ProofError, match=f"no customer has the e-mail address .*did you mean {email.lower()}"):
        proof.find_customer(connect(env.database_url), typo)
    result = invoke(env, "preview", "--customer", "not an address")
    assert "neither a customer id (digits) nor a valid e-mail address" in failure(result)


def test_send_test_writes_marked_proofs_to_the_outbox_and_nothing_to_the_ledger(env, tonight, night, request):
    customer_id = pick(tonight, "selected", "last_chance")
    planned = ledger.plan(connect(env.database_url), "last_chance", RUN,
                          pd.DataFrame({"customer_id": [customer_id], "occasion_key": ["lapse:2025-01-01"]}))
    before = ledger_rows(env)
    try:
        result = invoke(env, "send-test", "--campaign", "last_chance", "--to", "Team@Shop.example, qa@shop.example",
                        "--customer", str(customer_id), "--date", RUN.isoformat())
        assert result.exit_code == 0, result.output
        assert ledger_rows(env) == before
    finally:
        with connect(env.database_url).begin() as conn:
            conn.execute(send_ledger.delete().where(send_ledger.c.message_id.in_(planned["message_id"].tolist())))
    folder = env.state / "outbox" / "tests" / RUN.isoformat() / "last_chance"
    bodies = [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]
    assert sorted(b["personalizations"][0]["to"][0]["email"] for b in bodies) == ["Team@shop.example", "qa@shop.example"]
    real_ids = {ledger.message_id_for("last_chance", customer_id, key) for key in planned["occasion_key"]}
    name = night[1].data.customers.loc[customer_id, "first_name"]
    row = tonight[(tonight["customer_id"] == customer_id) & (tonight["campaign"] == "last_chance")].iloc[0]
    for body in bodies:
        assert body["subject"].startswith("[TEST] ") and name in body["subject"]
        assert body["categories"] == ["lojal-test"]
        assert body["custom_args"]["lojal_test"] == "1"
        assert body["custom_args"]["lojal_message_id"].startswith("test-")
        assert body["custom_args"]["lojal_message_id"] not in real_ids
        # its unsubscribe link carries the test id, no customer's token: following it unsubscribes nobody
        assert body["headers"]["List-Unsubscribe"].endswith(body["custom_args"]["lojal_message_id"] + ">")
        assert body["custom_args"]["lojal_variant"] == row["variant"]
        assert row["offer_code"] in body["content"][1]["value"]
    assert len({b["custom_args"]["lojal_message_id"] for b in bodies}) == 2
    assert not (env.state / "outbox" / RUN.isoformat()).exists()  # not among the night's real messages
    try:
        validator = request.getfixturevalue("mail_send_validator")
    except pytest.skip.Exception:
        return
    for body in bodies:
        assert not list(validator.iter_errors(body))


def test_send_test_through_the_local_sendgrid_carries_the_test_markers(env, monkeypatch):
    from lojal.sendgrid.local import LocalOptions, LocalSendGrid

    key = "SG.proof-test-key-0123456789"
    before = ledger_rows(env)
    with LocalSendGrid(LocalOptions(api_key=key)) as sg:
        monkeypatch.setenv("SENDGRID_API_KEY", key)
        monkeypatch.setenv("LOJAL_SENDGRID_URL", sg.url)
        result = invoke(env, "send-test", "--campaign", "win_back", "--to", "qa@shop.example,qa2@shop.example",
                        "--delivery", "sendgrid", "--date", RUN.isoformat())
        assert result.exit_code == 0, result.output
        accepted = list(sg.accepted)
        stats = sg.stats()
    # one request per address, each under its own fresh message id
    assert len(accepted) == 2 and stats["duplicates"] == 0 and stats["distinct_message_ids"] == 2
    assert sorted(to for item in accepted for to in item.to) == ["qa2@shop.example", "qa@shop.example"]
    for item in accepted:
        assert item.body["categories"] == ["lojal-test"]
        assert item.body["custom_args"]["lojal_test"] == "1"
        assert item.body["subject"].startswith("[TEST] ")
    assert ledger_rows(env) == before


def test_an_invalid_to_address_is_one_clear_error_and_nothing_is_sent(env):
    result = invoke(env, "send-test", "--campaign", "win_back", "--to", "qa@shop.example,kari@@example.no",
                    "--date", "2026-11-25")
    assert "--to 'kari@@example.no' is not an address Lojal can send to" in failure(result)
    assert not (env.state / "outbox" / "tests" / "2026-11-25").exists()
    with pytest.raises(AddressError, match="non-ASCII characters before the @"):
        proof.test_addresses("åse@example.no")
    result = invoke(env, "send-test", "--campaign", "nope", "--to", "qa@shop.example")
    assert "--campaign nope is not in config/campaigns.yaml" in failure(result)


class _Schedule:
    def __init__(self, nightly: str, zone: str | None = "Europe/Oslo"):
        self.nightly, self.timezone = nightly, zone


class _Config:
    def __init__(self, nightly: str = "0 2 * * *"):
        self.schedule = _Schedule(nightly)
        self.brand = type("Brand", (), {"timezone": "Europe/Oslo"})()


def test_planning_moment_is_the_nightly_crons_time_across_dst():
    assert proof.planning_moment(_Config(), date(2026, 11, 24)) == pd.Timestamp("2026-11-24 01:00")
    assert proof.planning_moment(_Config(), date(2026, 7, 1)) == pd.Timestamp("2026-07-01 00:00")
    # 02:00 does not exist on 2026-03-29 in Oslo: Prefect's scheduler starts the run at 00:00 UTC
    assert proof.planning_moment(_Config(), date(2026, 3, 29)) == pd.Timestamp("2026-03-29 00:00")
    # 02:00 happens twice on 2026-10-25: the run starts at the first (CEST), 00:00 UTC
    assert proof.planning_moment(_Config(), date(2026, 10, 25)) == pd.Timestamp("2026-10-25 00:00")
    assert proof.planning_moment(_Config("0 2 * * 1"), date(2026, 11, 24)) == pd.Timestamp("2026-11-23 23:00")


def test_tonight_is_the_next_nightly_runs_night():
    at = lambda text: datetime.fromisoformat(text).replace(tzinfo=timezone.utc)  # noqa: E731
    assert proof.upcoming_night(_Config(), at("2026-11-24T00:30")) == date(2026, 11, 24)  # 01:30 in Oslo
    assert proof.upcoming_night(_Config(), at("2026-11-24T15:00")) == date(2026, 11, 25)


def test_both_commands_are_listed_and_documented_in_help():
    listing = runner.invoke(app, ["--help"]).output
    assert "send-test" in listing and "--customer" in listing
    preview = runner.invoke(app, ["preview", "--help"]).output
    assert "--customer" in preview and "--campaign" in preview
    result = runner.invoke(app, ["preview", "--campaign", "win_back"])
    assert result.exit_code == 2 and "--campaign and --date go with --customer" in result.output


@pytest.mark.postgres
def test_customer_lookup_and_ledger_history_on_postgresql(postgres_url):
    from lojal.sample import generate_shop
    from lojal.sample.store import write_sample_shop

    shop = generate_shop(40, seed=2, until=RUN)
    engine = connect(postgres_url)
    write_sample_shop(engine, shop, replace=False)
    first = shop.customers.iloc[0]
    customer_id, email = int(first["customer_id"]), first["email"]
    assert proof.find_customer(engine, email.upper()) == customer_id == proof.find_customer(engine, str(customer_id))
    with pytest.raises(ProofError, match=f"did you mean {email.lower()}"):
        proof.find_customer(engine, email.replace("@", "q@", 1))
    assert proof.ledger_history(engine, customer_id).empty
    ledger.plan(engine, "win_back", RUN, pd.DataFrame({"customer_id": [customer_id], "occasion_key": ["lapse:2026-01-02"]}))
    [row] = proof.ledger_history(engine, customer_id).to_dict("records")
    assert (row["campaign_id"], row["occasion_key"], row["state"], row["run_date"]) == (
        "win_back", "lapse:2026-01-02", "planned", RUN)
    assert pd.isna(row["accepted_at"])
    engine.dispose()


def test_tonights_own_ledger_row_is_shown_but_decides_nothing(env, night, tonight):
    """As in a re-run, tonight's planned row is the night's own: still selected, the ledger line says so."""
    engine = connect(env.database_url)
    row = tonight[(tonight["decision"] == "selected") & (tonight["campaign"] == "post_purchase")].iloc[0]
    customer_id = int(row["customer_id"])
    planned = ledger.plan(engine, "post_purchase", RUN,
                          pd.DataFrame({"customer_id": [customer_id], "occasion_key": [row["occasion_key"]]}))
    try:
        out = lines(night[1], customer_id)
    finally:
        with engine.begin() as conn:
            conn.execute(send_ledger.delete().where(send_ledger.c.message_id == planned["message_id"].iloc[0]))
    assert "post_purchase (Thank you for your order): selected" in out
    assert "  ledger:    tonight's run recorded it: planned" in out


def test_an_email_that_cannot_be_rendered_for_them_is_told_with_the_error(env, night, tonight, tmp_path):
    """Templates that compile but fail on this customer's data: the decisions are still shown."""
    import dataclasses

    from lojal.proof_cli import preview_lines
    from lojal.render import load_templates

    loaded, prepared = night
    copy = Paths(tmp_path / "project", env.state)
    shutil.copytree(loaded.paths.templates_dir, copy.templates_dir)
    shutil.copytree(loaded.paths.config_dir, copy.config_dir)
    strings = copy.templates_dir / "post_purchase" / "strings.yaml"
    strings.write_text(strings.read_text(encoding="utf-8").replace(
        "Takk for bestillingen, {{ customer.first_name }}", "Takk, {{ customer.first_name | int(strict) }}"),
        encoding="utf-8")
    broken = dataclasses.replace(prepared, project=dataclasses.replace(
        loaded, templates=load_templates(copy, loaded.config)))
    customer_id = int(tonight[(tonight["decision"] == "selected") & (tonight["campaign"] == "post_purchase")
                              & (tonight["customer_id"].map(prepared.data.customers["locale"]) == "nb")]
                      ["customer_id"].iloc[0])
    result = proof.customer_preview(broken, customer_id, proof.ledger_history(connect(env.database_url), customer_id),
                                    decisions.ShopSecret(SECRET.encode()))
    assert not result.proofs and "RenderError" in result.failures["post_purchase"]
    assert "undefined variable" in result.failures["post_purchase"], result.failures
    out = "\n".join(preview_lines(result))
    assert "post_purchase (Thank you for your order): selected, but its e-mail cannot be rendered for them" in out
    assert "Campaigns, highest priority first:" in out
