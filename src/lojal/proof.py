"""See it before it goes out: what one real customer would get tonight, and proofs for the team.

- `preview_customer` (`lojal preview --customer ID|EMAIL`): the night is prepared as the nightly run
  prepares it (`pipeline.prepare_night`), then `decisions.decide` runs over that one customer (every
  step of it is per customer: gate, occasions, caps, priorities, holdout and arm hashes) with their
  ledger history, planning at the night's scheduled time (config/schedule.yaml). Each enabled
  campaign gets a decision with its reason in a marketer's words; a selected one is rendered with the
  nightly run's context stages (lojal.pipeline: their market's prices, their language, their last
  order, their recommendations) plus the decision's offer code and its variant's template and subject.
- `send_test` (`lojal send-test`): a campaign rendered for a real customer or a built-in sample
  customer, sent to the team's addresses through the configured backend, marked as a test
  (subject "[TEST] ", category `lojal-test`, custom arg `lojal_test=1`) under a fresh message id.

Nothing here writes to the ledger or counts against caps; outbox proofs go to `outbox/tests/<date>/`.
"""

from __future__ import annotations

import difflib
import secrets
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd
from sqlalchemy import Engine, func, select

from lojal import decisions
from lojal.addresses import mailbox_key, sendable
from lojal.config import Campaign, ProjectConfig, load_config
from lojal.delivery import OutgoingMessage
from lojal.delivery.base import DeliveryResult
from lojal.errors import AddressError, LojalError, ProofError
from lojal.paths import Paths

NOT_IN_SEGMENT = "not_in_segment"
TEST_PREFIX = "[TEST] "
TEST_CATEGORY = "lojal-test"
TEST_ARG = "lojal_test"
MAX_TEST_RECIPIENTS = 20


# ---------------------------------------------------------------- which customer, which night

def find_customer(engine: Engine, text: str) -> int:
    """The customer id `text` names: an id (digits) or an e-mail address (compared by mailbox key).
    ProofError saying what was not found, with the closest address of the same domain if any."""
    from lojal.store import schema
    from lojal.store.db import require_schema

    require_schema(engine)
    text = text.strip()
    table = schema.customers
    with engine.connect() as conn:
        if text.isdigit():
            found = conn.execute(select(table.c.customer_id).where(table.c.customer_id == int(text))).scalar()
            if found is None:
                raise ProofError(f"--customer {text}: there is no customer with id {text} in the store")
            return int(found)
        key = mailbox_key(text)
        if key is None:
            raise ProofError(f"--customer {text!r} is neither a customer id (digits) nor a valid e-mail address")
        found = conn.execute(select(table.c.customer_id).where(func.lower(table.c.email) == key)).scalar()
        if found is not None:
            return int(found)
        domain = key.rpartition("@")[2]
        same_domain = conn.execute(select(table.c.email).where(func.lower(table.c.email).like(f"%@{domain}"))
                                   .limit(50_000)).scalars().all()
    close = difflib.get_close_matches(key, [e.lower() for e in same_domain], n=1, cutoff=0.8)
    hint = f"; did you mean {close[0]}?" if close else ""
    raise ProofError(f"--customer {text}: no customer has the e-mail address {key}{hint}")


def schedule_zone(config: ProjectConfig) -> str:
    return config.schedule.timezone or config.brand.timezone


def nightly_fire(config: ProjectConfig, start: datetime) -> datetime:
    """The first time at or after `start` (aware) that Prefect fires the nightly deployment: its cron
    (config/schedule.yaml) in its zone, computed by Prefect's own schedule (daylight-saving days
    included, exactly as the scheduler does)."""
    import asyncio

    from prefect.server.schemas.schedules import CronSchedule

    schedule = CronSchedule(cron=config.schedule.nightly, timezone=schedule_zone(config))
    [fire] = asyncio.run(schedule.get_dates(n=1, start=start))
    return datetime.fromtimestamp(fire.timestamp(), ZoneInfo(schedule_zone(config)))


def planning_moment(config: ProjectConfig, night: date) -> pd.Timestamp:
    """When the nightly run of `night` plans (naive UTC): its scheduled time on that date, else the
    shop's midnight starting it (a cron that does not fire that day)."""
    zone = ZoneInfo(schedule_zone(config))
    midnight = datetime(night.year, night.month, night.day, tzinfo=zone)
    fire = nightly_fire(config, midnight)
    moment = fire if fire.date() == night else midnight
    return pd.Timestamp(moment).tz_convert("UTC").tz_localize(None)


def upcoming_night(config: ProjectConfig, now: datetime | None = None) -> date:
    """The night of the next scheduled nightly run: 'tonight'."""
    from lojal.schedule import night_for

    return night_for(nightly_fire(config, now or datetime.now(timezone.utc)), config.brand.timezone)


def ledger_history(engine: Engine, customer_id: int) -> pd.DataFrame:
    """The customer's ledger rows in the shape `decisions.decide` reads (read only)."""
    from lojal.store.schema import send_ledger

    c = send_ledger.c
    query = select(c.campaign_id, c.customer_id, c.occasion_key, c.state, c.accepted_at, c.run_date).where(
        c.customer_id == customer_id)
    with engine.connect() as conn:
        frame = pd.read_sql(query, conn)
    frame["accepted_at"] = pd.to_datetime(frame["accepted_at"])
    frame["run_date"] = pd.to_datetime(frame["run_date"]).dt.date
    return frame


# ---------------------------------------------------------------- decisions for one customer

@dataclass(frozen=True)
class Decision:
    campaign_id: str
    campaign_name: str
    priority: int
    decision: str                # selected | held_out | excluded | not_in_segment
    reason: str | None           # code (decisions.REASONS, or not_in_segment); None when selected
    why: str                     # in a marketer's words; "" when selected
    occasion_key: str | None = None
    variant: str | None = None
    offer_code: str | None = None
    send_at: datetime | None = None   # naive UTC
    zone: str | None = None          # the customer's time zone (the shop's when theirs is unknown)
    ledger: str | None = None        # what the ledger already holds for this occasion

    @property
    def send_at_local(self) -> datetime | None:
        if self.send_at is None:
            return None
        return self.send_at.replace(tzinfo=timezone.utc).astimezone(ZoneInfo(self.zone or "UTC"))

    @property
    def selected(self) -> bool:
        return self.decision == decisions.SELECTED


def customer_decisions(config: ProjectConfig, night, customer_id: int, history: pd.DataFrame,
                       now: pd.Timestamp, secret: decisions.ShopSecret) -> list[Decision]:
    """Every enabled campaign's decision for one customer, highest priority first."""
    from lojal.timezones import customer_zones

    one = pd.Index([customer_id])
    table = decisions.decide(config.campaigns, night.data, night.features.loc[one], night.membership.loc[one],
                             history, now=now, shop_timezone=config.brand.timezone, secret=secret,
                             run_date=night.run_date, tier_order=[t.name for t in config.loyalty.tiers])
    zone = customer_zones(night.data.customers["time_zone"].loc[one], config.brand.timezone).iloc[0]
    rows = {row["campaign"]: row for row in table.to_dict("records")}
    out = []
    for campaign in sorted(config.campaigns.enabled, key=lambda c: -c.priority):
        row = rows.get(campaign.id)
        if row is None:
            out.append(Decision(campaign.id, campaign.name, campaign.priority, NOT_IN_SEGMENT, NOT_IN_SEGMENT,
                                f"not in the segment '{campaign.segment}' tonight", zone=zone))
            continue
        send_at = None if pd.isna(row["send_at"]) else pd.Timestamp(row["send_at"]).to_pydatetime()
        out.append(Decision(
            campaign.id, campaign.name, campaign.priority, row["decision"], _text(row["reason"]),
            _text(row["detail"]) or "", _text(row["occasion_key"]), _text(row["variant"]), _text(row["offer_code"]),
            send_at, zone, _ledger_note(history, campaign.id, _text(row["occasion_key"]), night.run_date)))
    return out


def _text(value) -> str | None:
    return None if value is None or (not isinstance(value, str) and pd.isna(value)) else str(value)


def _ledger_note(history: pd.DataFrame, campaign_id: str, occasion_key: str | None, night: date) -> str | None:
    """What the ledger holds for this (campaign, occasion), e.g. 'the run of 2026-11-23 recorded it: sent'.
    (Tonight's own rows do not decide tonight, as in a re-run; the note still shows them.)"""
    if occasion_key is None or history.empty:
        return None
    rows = history[(history["campaign_id"] == campaign_id) & (history["occasion_key"] == occasion_key)]
    if rows.empty:
        return None
    row = rows.iloc[0]
    which = "tonight's run" if row["run_date"] == night else f"the run of {row['run_date']}"
    return f"{which} recorded it: {row['state']}"


# ---------------------------------------------------------------- rendering

@dataclass
class Proof:
    campaign_id: str
    template: str
    locale: str
    subject: str
    preheader: str
    html: str
    text: str
    customer: dict[str, Any]
    recommendations: list[dict[str, Any]] = field(default_factory=list)
    variant: str | None = None
    offer_code: str | None = None
    subject_key: str | None = None  # the variant's own subject string key (strings.yaml), applied


def render_for_customer(night, config: ProjectConfig, campaign: Campaign, customer_id: int, message_id: str,
                        variant: str | None, offer_code: str | None) -> Proof:
    """The e-mail the nightly run would render for this customer (the same context stages)."""
    from lojal.pipeline import (_customer_contexts, _last_orders, _localize_orders, _localized,
                                _recommend_per_market)

    ids = pd.Index([customer_id], dtype="int64").to_numpy()
    customer = _customer_contexts(night, ids)[customer_id]
    last_orders = _last_orders(night.data, night.features, ids)
    recs: list = []
    spec = campaign.recommendations
    if spec is not None:
        triggers = ({customer_id: [i["sku"] for i in last_orders[customer_id]["items"]]}
                    if spec.exclude_trigger_order and customer_id in last_orders else None)
        recs = _recommend_per_market(night, ids, {customer_id: customer}, spec, triggers).get(customer_id, [])
    _localize_orders(night, {customer_id: customer}, last_orders)
    context = _context(config, campaign, customer, [_localized(night, r.to_context(), customer) for r in recs],
                       last_orders.get(customer_id), message_id, night.run_date, offer_code)
    return _render(night.project.templates, campaign, customer, context, variant, offer_code)


def render_for_sample(templates, config: ProjectConfig, campaign: Campaign, message_id: str) -> Proof:
    """The campaign rendered for a built-in sample customer (no store needed)."""
    from lojal.render.samples import RUN_DATE, SAMPLE_CUSTOMERS, SAMPLE_SECRET, sample_context, samples_for

    sample = (samples_for(config, campaign) or list(SAMPLE_CUSTOMERS))[0]
    context = sample_context(campaign, sample)
    ids = [sample.customer["id"]]
    variant = decisions.arm_names(campaign, ids, SAMPLE_SECRET)[0]
    offer = context.get("offer", {}).get("code")
    context = _context(config, campaign, context["customer"], context["recommendations"], context["last_order"],
                       message_id, RUN_DATE, offer)
    return _render(templates, campaign, context["customer"], context, variant, offer)


def _context(config: ProjectConfig, campaign: Campaign, customer: dict, recommendations: list, last_order,
             message_id: str, run_date: date, offer_code: str | None) -> dict[str, Any]:
    unsubscribe_url = config.brand.unsubscribe_url.replace("{token}", message_id)
    context = {"customer": customer, "recommendations": recommendations, "last_order": last_order,
               "campaign": {"id": campaign.id, "name": campaign.name},
               "message": {"id": message_id, "unsubscribe_url": unsubscribe_url, "run_date": run_date}}
    if offer_code:
        context["offer"] = {"code": offer_code}
    return context


def _render(templates, campaign: Campaign, customer: dict, context: dict, variant: str | None,
            offer_code: str | None) -> Proof:
    from lojal.pipeline import arm_of

    template, subject_key = arm_of(campaign, variant)
    rendered = templates.render(template, customer["locale"], context, subject_key=subject_key)
    return Proof(campaign.id, template, customer["locale"], rendered.subject, rendered.preheader, rendered.html,
                 rendered.text, customer, list(context["recommendations"]), variant, offer_code, subject_key)


# ---------------------------------------------------------------- lojal preview --customer

@dataclass
class CustomerPreview:
    customer_id: int
    customer: dict[str, Any]         # email, first_name, locale, market, time_zone
    run_date: date
    planned_at: datetime             # naive UTC: when the night's run plans
    decisions: list[Decision]
    shown: list[Decision]            # the decisions asked about (--campaign) or tonight's selected ones
    proofs: dict[str, Proof]         # campaign id -> the rendered e-mail (selected ones)
    files: dict[str, list[Path]] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)  # campaign id -> why its e-mail could not be rendered


def preview_customer(paths: Paths, who: str, campaign_id: str | None = None, run_date: date | None = None,
                     out: Path | None = None, progress=lambda _: None) -> CustomerPreview:
    """What `who` would get on `run_date` (default: the upcoming night). Writes the rendered
    e-mails (HTML and text) under `out` (default <state>/preview/customer-<id>/); no ledger row."""
    from lojal import pipeline
    from lojal.store import connect

    engine = connect(paths.database_url)
    try:
        customer_id = find_customer(engine, who)  # before the slow part: a typo is told at once
        _campaign(load_config(paths), campaign_id)
        project = pipeline.load_project(paths)
        secret = decisions.shop_secret(paths, project.config)
        night = pipeline.prepare_night(project, run_date or upcoming_night(project.config), progress)
        history = ledger_history(engine, customer_id)
    finally:
        engine.dispose()
    progress("deciding")
    result = customer_preview(night, customer_id, history, secret, campaign_id)
    result.files = write_proofs(result, out or paths.state / "preview" / f"customer-{customer_id}")
    return result


def customer_preview(night, customer_id: int, history: pd.DataFrame, secret: decisions.ShopSecret,
                     campaign_id: str | None = None, now: pd.Timestamp | None = None) -> CustomerPreview:
    """The customer's decisions on the prepared `night` (planning at the night's scheduled time unless
    `now` is given) and the rendered e-mail of each selected campaign (or of `campaign_id` only)."""
    config = night.project.config
    campaign = _campaign(config, campaign_id)
    now = planning_moment(config, night.run_date) if now is None else now
    decided = customer_decisions(config, night, customer_id, history, now, secret)
    shown = [d for d in decided if (d.campaign_id == campaign.id if campaign else d.selected)]
    proofs, failures = {}, {}
    for d in (d for d in shown if d.selected):
        try:
            proofs[d.campaign_id] = render_for_customer(night, config, config.campaign(d.campaign_id), customer_id,
                                                        f"preview-{d.campaign_id}-{customer_id}", d.variant, d.offer_code)
        except LojalError as exc:  # the nightly run would fail this message with the same error
            failures[d.campaign_id] = f"{type(exc).__name__}: {exc}"
    row = night.data.customers.loc[customer_id]
    info = {k: _text(row[k]) for k in ("email", "first_name", "locale", "market", "time_zone")}
    return CustomerPreview(customer_id, info, night.run_date, now.to_pydatetime(), decided, shown, proofs,
                           failures=failures)


def _campaign(config: ProjectConfig, campaign_id: str | None) -> Campaign | None:
    if campaign_id is None:
        return None
    enabled = {c.id: c for c in config.campaigns.enabled}
    if campaign_id not in enabled:
        known = {c.id for c in config.campaigns.campaigns}
        state = "is disabled in config/campaigns.yaml" if campaign_id in known else "is not in config/campaigns.yaml"
        raise ProofError(f"--campaign {campaign_id} {state}; enabled campaigns: {', '.join(sorted(enabled))}")
    return enabled[campaign_id]


def write_proofs(preview: CustomerPreview, folder: Path) -> dict[str, list[Path]]:
    files: dict[str, list[Path]] = {}
    for campaign_id, proof in preview.proofs.items():
        folder.mkdir(parents=True, exist_ok=True)
        stem = folder / f"{preview.run_date.isoformat()}-{campaign_id}"
        html, text = stem.with_suffix(".html"), stem.with_suffix(".txt")
        html.write_text(proof.html, encoding="utf-8")
        text.write_text(f"Subject: {proof.subject}\n\n{proof.text}", encoding="utf-8")
        files[campaign_id] = [html, text]
    return files


# ---------------------------------------------------------------- lojal send-test

def test_addresses(text: str) -> list[str]:
    """--to ADDRESS[,ADDRESS]: each checked with the one address rule; AddressError naming the bad one."""
    raw = [part.strip() for part in text.split(",") if part.strip()]
    if not raw:
        raise AddressError("--to needs at least one e-mail address, e.g. --to team@shop.example")
    if len(raw) > MAX_TEST_RECIPIENTS:
        raise AddressError(f"--to lists {len(raw)} addresses; send proofs to at most {MAX_TEST_RECIPIENTS}")
    addresses = []
    for part in raw:
        try:
            addresses.append(sendable(part).email)
        except AddressError as exc:
            raise AddressError(f"--to {part!r} is not an address Lojal can send to: {exc}") from None
    return list(dict.fromkeys(addresses))


def test_message_id() -> str:
    """A fresh id per proof: never a customer's real message id (an idempotent backend would
    otherwise take tonight's real message as a duplicate of the proof)."""
    return f"test-{secrets.token_hex(12)}"


def test_message(config: ProjectConfig, proof: Proof, to_email: str, message_id: str) -> OutgoingMessage:
    campaign = config.campaign(proof.campaign_id)
    unsubscribe_url = config.brand.unsubscribe_url.replace("{token}", message_id)
    args = {"lojal_message_id": message_id, "lojal_campaign": campaign.id, TEST_ARG: "1"}
    if proof.variant:
        args["lojal_variant"] = proof.variant
    return OutgoingMessage(
        message_id=message_id, campaign_id=campaign.id, customer_id=int(proof.customer["id"]), to_email=to_email,
        to_name="", from_email=config.sender.from_email, from_name=config.sender.from_name,
        reply_to=config.sender.reply_to, subject=TEST_PREFIX + proof.subject, preheader=proof.preheader,
        html=proof.html, text=proof.text, categories=(TEST_CATEGORY,), custom_args=args,
        headers={"List-Unsubscribe": f"<{unsubscribe_url}>", "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"})


@dataclass
class SendTestResult:
    backend: str
    proof: Proof
    results: list[DeliveryResult]
    folder: Path | None = None  # the outbox folder, for the outbox backend


def send_test(paths: Paths, campaign_id: str, to: str, customer: str | None = None, run_date: date | None = None,
              delivery: str | None = None, progress=lambda _: None) -> SendTestResult:
    """Render `campaign_id` for `customer` (a built-in sample customer without one) and send it to
    each --to address through the configured backend (`delivery` overrides it), marked as a test."""
    from lojal import pipeline

    addresses = test_addresses(to)
    customer_id = _find(paths, customer) if customer is not None else None
    _campaign(load_config(paths), campaign_id)  # before compiling every template
    project = pipeline.load_project(paths)
    config = project.config
    campaign = _campaign(config, campaign_id)
    run_date = run_date or upcoming_night(config)
    backend, folder = _test_backend(config, paths, run_date, delivery)
    ids = [test_message_id() for _ in addresses]
    if customer_id is None:
        proof = render_for_sample(project.templates, config, campaign, ids[0])
    else:
        proof = _customer_proof(project, campaign, customer_id, run_date, ids[0], progress)
    messages = [test_message(config, proof, address, message_id) for address, message_id in zip(addresses, ids)]
    try:
        results = backend.send_batch(messages)
    finally:
        backend.finish()
    return SendTestResult(backend.name, proof, results, folder)


def _find(paths: Paths, who: str) -> int:
    from lojal.store import connect

    engine = connect(paths.database_url)
    try:
        return find_customer(engine, who)
    finally:
        engine.dispose()


def _customer_proof(project, campaign: Campaign, customer_id: int, run_date: date, message_id: str,
                    progress) -> Proof:
    """The campaign for a real customer, whatever tonight's decision: their arm and offer code."""
    from lojal import pipeline

    secret = decisions.shop_secret(project.paths, project.config)
    night = pipeline.prepare_night(project, run_date, progress)
    variant = decisions.arm_names(campaign, [customer_id], secret)[0]
    offer = decisions.offer_codes(campaign, [customer_id], secret)[0]
    return render_for_customer(night, project.config, campaign, customer_id, message_id, variant, offer)


def _test_backend(config: ProjectConfig, paths: Paths, run_date: date, name: str | None):
    """The configured backend; the outbox one writes proofs to outbox/tests/<date>/, apart from the
    night's real messages."""
    from lojal.delivery import BACKENDS, OutboxBackend, backend_for

    name = name or config.sender.delivery.backend
    if name not in BACKENDS:
        raise ProofError(f"--delivery {name} is not a delivery backend; use one of {', '.join(BACKENDS)}")
    if name == "outbox":
        folder = paths.state / "outbox" / "tests" / run_date.isoformat()
        return OutboxBackend(folder, config.tracking, config.sender.delivery.sendgrid), folder
    return backend_for(config, paths, run_date, name), None


__all__ = ["Decision", "CustomerPreview", "Proof", "SendTestResult", "find_customer", "planning_moment",
           "upcoming_night", "ledger_history", "customer_decisions", "customer_preview", "preview_customer", "send_test",
           "test_addresses", "test_message", "NOT_IN_SEGMENT", "TEST_PREFIX", "TEST_CATEGORY", "TEST_ARG"]
