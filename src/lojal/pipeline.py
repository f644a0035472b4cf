"""The nightly run as plain functions; `lojal.flows.nightly` wires them into Prefect.

1. `load_project`   every marketer file validated (config, segments, templates) before any data
2. `prepare_night`  shop data as of the run date, features, segment membership, recommender
3. `plan_campaigns` decide (lojal.decisions: one decision per customer and campaign, with its
                    reason), then record: ledger rows `planned` (with what each message is made of:
                    variant, send_at, offer code, file hashes, recommended items) and `held_out`;
                    messages of earlier nights sent late or expired
4. `build_messages` rendering of one batch from its ledger rows (no recommender needed)
5. `deliver`        one batch through the backend in windows: rows committed `sending` before each
                    window's requests, each settled after (sent/rejected/failed/unknown/abandoned)
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path

import numpy as np
import orjson
import pandas as pd
from sqlalchemy import Engine

from lojal import decisions, ledger, runlog
from lojal.addresses import sendable
from lojal.audience import exclusion_reasons
from lojal.clock import shop_today, start_of_day_utc
from lojal.config import Campaign, CampaignsFile, Delivery, ProjectConfig, check_config, load_config_parts
from lojal.delivery import DeliveryBackend, OutgoingMessage
from lojal.delivery.base import FAILED, DeliveryResult
from lojal.errors import DeliveryAuthError, DeliveryError, LojalError, Problem, ProjectError
from lojal.features import RENDERING_FEATURES, compute_features, rendering_features
from lojal.markets import MarketCatalogue
from lojal.paths import Paths
from lojal.reco import Recommender, fit_recommender
from lojal.reco.repurchase import fit_repurchase
from lojal.reco.strategies import RecoParams
from lojal.render import TemplateSet, load_templates
from lojal.secrets import Secrets, load_secrets
from lojal.segments import SegmentSet, evaluate_segments, load_segments
from lojal.store import connect, load_shop_data
from lojal.store.shopdata import ShopData, load_shop_part
from lojal.tracking.tokens import unsubscribe_url as signed_unsubscribe_url

Progress = Callable[[str], None]


@dataclass
class Project:
    paths: Paths
    config: ProjectConfig
    segments: SegmentSet
    templates: TemplateSet


@dataclass
class Night:
    project: Project
    run_date: date
    engine: Engine
    data: ShopData
    features: pd.DataFrame
    membership: pd.DataFrame
    recommender: Recommender | None
    plans: list["CampaignPlan"] = field(default_factory=list)
    catalogue: MarketCatalogue | None = None  # prices per market, titles per locale
    secrets: Secrets | None = field(default=None, repr=False)  # the shop's secret (lojal.secrets): tokens
    now: pd.Timestamp | None = None  # the planning moment (naive UTC); planning_moment() when None
    decisions: pd.DataFrame | None = None  # tonight's decision log (decide_night)
    partial: bool = False  # data holds the catalogue alone (prepare_rendering_night): each batch reads its
                           # customers and orders from the store; no features, segments or recommender


# A batch to build: ledger rows with what each message is made of.
PENDING_COLUMNS = ("message_id", "customer_id", "occasion_key", "state", "variant", "send_at", "offer_code", "made_from")


@dataclass
class CampaignPlan:
    campaign: Campaign
    decisions: pd.DataFrame  # this campaign's rows of the decision log
    pending: pd.DataFrame  # PENDING_COLUMNS: tonight's sendable rows (planned/failed), late ones first
    already_sent: int
    sent_late: int = 0  # of `pending`: planned on an earlier night
    expired: int = 0  # planned on an earlier night, closed tonight (too late or no longer mailable)
    not_again: Counter = field(default_factory=Counter)  # tonight's rows in another final state, by state


@dataclass
class BatchOutcome:
    delivered: int = 0
    duplicates: int = 0
    failed: dict[str, str] = field(default_factory=dict)  # every message not delivered, with why
    states: Counter = field(default_factory=Counter)  # final state of each message of the batch
    attempts: int = 0  # requests made (retries included)
    errors: int = 0  # attempts that ended failed, rejected or unknown
    paused: str | None = None  # why the campaign paused itself during this batch


@dataclass
class Tally:
    """A campaign's attempts tonight, for its error-rate pause."""
    attempts: int = 0
    errors: int = 0
    paused: str | None = None


def pause_reason(tally: Tally, settings: Delivery) -> str | None:
    """Why the campaign should pause now, or None."""
    if tally.attempts < settings.pause_min_messages or tally.attempts == 0:
        return None
    rate = tally.errors / tally.attempts
    if rate <= settings.pause_error_rate:
        return None
    return (f"paused: {tally.errors:,} of {tally.attempts:,} attempts tonight failed, were rejected or ended "
            f"unknown ({rate:.0%} > pause_error_rate {settings.pause_error_rate:.0%}); the rest stay planned "
            "for the next run")


def load_project(paths: Paths) -> Project:
    """Validate every marketer file; raise ProjectError listing all problems."""
    config, problems = check_config(paths)
    segments = templates = None
    try:
        segments = load_segments(paths)
    except ProjectError as exc:
        problems = problems + exc.problems
    if config is not None:
        try:
            templates = load_templates(paths, config)
        except ProjectError as exc:
            problems = problems + exc.problems
        problems = problems + _missing_references(config.campaigns, segments)
    if problems:
        raise ProjectError(problems)
    return Project(paths, config, segments, templates)


def _missing_references(campaigns: CampaignsFile, segments) -> list[Problem]:
    if segments is None:
        return []
    return [Problem("config/campaigns.yaml", None, None,
                    f"campaign '{c.id}' uses segment '{c.segment}', which no file in segments/ defines; "
                    f"use one of: {', '.join(sorted(segments.names))}")
            for c in campaigns.enabled if c.segment not in set(segments.names)]


def check_project(paths: Paths, compare_mjml: bool = False) -> list:
    """Every problem in config/, segments/ and templates/ (for `lojal check`); where the store
    already has products, also segment conditions on categories or SKUs it has never had.
    `compare_mjml`: also compile the templates with official MJML and report its findings."""
    from lojal.render import check_templates
    from lojal.segments.catalogue import catalogue_problems
    from lojal.segments.loader import build_segment_set
    from lojal.store.shopdata import catalogue_names

    parts, problems = load_config_parts(paths)
    config = ProjectConfig(**parts) if not problems else None
    segment_set, segment_problems = build_segment_set(paths)
    problems = problems + segment_problems
    catalogue = catalogue_names(paths.database_url)
    if catalogue is not None:
        problems += catalogue_problems(segment_set, *catalogue)
    if config is not None:
        problems += check_templates(paths, config, compare_mjml)
    if "campaigns" in parts:
        try:
            problems += _missing_references(parts["campaigns"], load_segments(paths))
        except ProjectError:
            pass
    return sorted(set(problems), key=lambda p: (p.path, p.line or 0, p.col or 0, p.message))


def prepare_night(project: Project, run_date: date, progress: Progress = lambda _: None,
                  for_rendering: bool = False) -> Night:
    """The night's data, features, segment membership and recommender. `for_rendering`: only what
    rendering recorded ledger rows needs (no segments, no recommender; `lojal ledger show --render`)."""
    engine = connect(project.paths.database_url)
    progress("loading shop data")
    data = load_shop_data(engine, run_date, project.config.brand.timezone, project.config.market_set)
    progress("computing features")
    previous_run = runlog.previous_completed_run(engine, run_date)
    if for_rendering:  # what a message's context reads: no model fitted, no segments, no recommender
        features = rendering_features(data, project.config.loyalty, previous_run)
        membership, recommender = pd.DataFrame(index=features.index), None
    else:
        with ThreadPoolExecutor(2, thread_name_prefix="lojal-prepare") as pool:
            # One repurchase fit for the features and the recommender, in a thread (numpy and boosted
            # trees, mostly without the GIL) beside the other features and the recommender's other
            # strategies (a second thread), which wait for it only where they use it.
            repurchase = pool.submit(fit_repurchase, data.lines, data.as_of, RecoParams().repurchase).result
            recommending = pool.submit(fit_recommender, data, repurchase=repurchase)
            features = compute_features(data, project.config.loyalty, previous_run, repurchase=repurchase)
            progress("evaluating segments")
            membership = evaluate_segments(project.segments, features, data)
            progress("fitting recommendations")
            recommender = recommending.result()
    catalogue = MarketCatalogue(project.config.market_set, data.products, data.prices, data.texts)
    secrets = load_secrets(project.paths, project.config)  # once per night; never logged
    return Night(project, run_date, engine, data, features, membership, recommender, catalogue=catalogue,
                 secrets=secrets)


def prepare_rendering_night(project: Project, run_date: date) -> Night:
    """What rendering ledger rows that carry their customer's context (`made_from`'s "customer",
    recorded at planning) needs, and no more: the catalogue (products, prices, texts), the compiled
    templates and the secret. Each batch reads its own customers and their last orders from the
    store (load_shop_part), so a Dask worker never reads or holds the whole shop."""
    engine = connect(project.paths.database_url)
    data = load_shop_data(engine, run_date, project.config.brand.timezone, project.config.market_set, catalogue_only=True)
    catalogue = MarketCatalogue(project.config.market_set, data.products, data.prices, data.texts)
    return Night(project, run_date, engine, data, None, pd.DataFrame(), None, catalogue=catalogue,
                 secrets=load_secrets(project.paths, project.config), partial=True)


def needs_whole_night(night: Night, batch: pd.DataFrame) -> bool:
    """A partial night cannot render rows planned before Lojal recorded the customer's context
    with each message: those read the night's features (prepare_night(for_rendering=True))."""
    return night.partial and not all(record is not None and "customer" in record
                                     for record in map(made_from_record, batch["made_from"]))


def planning_moment(run_date: date, zone: str, clock: Callable[[], pd.Timestamp] | None = None) -> pd.Timestamp:
    """When tonight is planned (naive UTC): the clock for tonight's night (the shop's today); for
    another night (a back-dated or simulated run) the start of that day in the shop's zone, so
    send times and caps are measured from the night being planned."""
    now = (clock or (lambda: pd.Timestamp.now(tz="UTC").tz_localize(None)))()
    if run_date == shop_today(zone):
        return now
    return pd.Timestamp(start_of_day_utc(pd.Timestamp(run_date), zone))


def decide_night(night: Night, carried: pd.DataFrame | None = None, only: str | None = None) -> pd.DataFrame:
    """Tonight's decision log (lojal.decisions.decide) from the store's data and the ledger's history:
    caps and "already received" count what was accepted, by when it was accepted. `carried`: messages
    of earlier nights sent late tonight; `only`: decide one campaign (the others untouched)."""
    config = night.project.config
    history = ledger.history_rows(night.engine)
    now = night.now if night.now is not None else planning_moment(night.run_date, config.brand.timezone)
    night.now = now
    return decisions.decide(config.campaigns, night.data, night.features, night.membership, history, now=now,
                            shop_timezone=config.brand.timezone, secret=decisions.ShopSecret(night.secrets.current),
                            run_date=night.run_date, tonight=_tonight(history, carried, night.run_date, now),
                            only=[only] if only else None)


def _tonight(history: pd.DataFrame, carried: pd.DataFrame | None, run_date: date, now: pd.Timestamp) -> pd.DataFrame:
    """What customers already have tonight: accepted (or maybe accepted) for tonight by an earlier run,
    and messages of earlier nights sent late tonight. Columns: decisions.TONIGHT_COLUMNS."""
    got = history[(history["night"] == run_date).to_numpy() & (history["state"] != ledger.HELD_OUT).to_numpy()]
    own = (got["run_date"] == run_date).to_numpy()
    frames = [pd.DataFrame({"campaign_id": got["campaign_id"].to_numpy(), "customer_id": got["customer_id"].to_numpy(),
                            "reason": np.where(own, decisions.SENT_TONIGHT, decisions.SENT_LATE),
                            "moment": got["accepted_at"].fillna(now).to_numpy(),
                            "for_caps": own | got["accepted_at"].isna().to_numpy()})]
    if carried is not None and len(carried):
        frames.append(pd.DataFrame({"campaign_id": carried["campaign_id"].to_numpy(),
                                    "customer_id": carried["customer_id"].to_numpy(), "reason": decisions.SENT_LATE,
                                    "moment": now, "for_caps": True}))
    return pd.concat(frames, ignore_index=True)


def plan_campaigns(night: Night, only: str | None = None) -> list[CampaignPlan]:
    """A real run's planning: close what expired, decide, and record the decisions in the ledger
    (`planned` with what each message is made of, `held_out`). A re-run of the night finds its rows
    and plans nothing twice; messages of earlier nights still sendable are sent late tonight.
    (The nightly flow decides, then records each campaign just before it is delivered.)"""
    decided = decide_campaigns(night, only)
    plans = [record_campaign(night, decided, campaign, refresh=False) for campaign in decided.campaigns]
    ledger.refresh_statistics(night.engine)
    return plans


@dataclass
class Decided:
    """Tonight's decisions for every campaign, not yet recorded (decide_campaigns)."""
    campaigns: list[Campaign]  # the enabled campaigns (or the one asked for), each recorded by record_campaign
    by_campaign: dict[str, pd.DataFrame]  # each campaign's rows of night.decisions
    carried: pd.DataFrame  # messages of earlier nights sent late tonight
    expired: Counter  # messages of earlier nights closed tonight, per campaign


def decide_campaigns(night: Night, only: str | None = None) -> Decided:
    """Close what expired, then decide every campaign at once (night.decisions: caps and priorities
    are across campaigns); nothing is recorded yet."""
    enabled = [c for c in night.project.config.campaigns.enabled if only is None or c.id == only]
    carried, expired = _carried_over(night, ledger.carried_rows(night.engine, [c.id for c in enabled], night.run_date))
    ledger.close(night.engine, {m: why for m, (_, why) in expired.items()}, ledger.EXPIRED)
    night.decisions = decide_night(night, carried, only)
    return Decided(enabled, dict(tuple(night.decisions.groupby("campaign", sort=False))), carried,
                   Counter(campaign_id for campaign_id, _ in expired.values()))


def record_campaign(night: Night, decided: Decided, campaign: Campaign, refresh: bool = True) -> CampaignPlan:
    """Record one campaign's decisions in the ledger (`planned` with what each message is made of,
    `held_out`) and return what to send tonight. `refresh`: bring the ledger's planner statistics up
    to date for its delivery (ledger.refresh_statistics)."""
    plan = _record_campaign(night, campaign, decided.by_campaign.get(campaign.id, night.decisions.iloc[:0]),
                            decided.carried[decided.carried["campaign_id"] == campaign.id], decided.expired[campaign.id])
    if refresh:
        ledger.refresh_statistics(night.engine)
    return plan


def _record_campaign(night: Night, campaign: Campaign, mine: pd.DataFrame, late: pd.DataFrame,
                     expired: int) -> CampaignPlan:
    chosen = mine[mine["decision"].isin((decisions.SELECTED, decisions.HELD_OUT)).to_numpy()]
    rows = chosen[["customer_id", "occasion_key", "variant", "send_at", "offer_code"]].copy()
    rows["state"] = np.where(chosen["decision"] == decisions.HELD_OUT, ledger.HELD_OUT, ledger.PLANNED)
    rows["message_id"] = ledger.message_ids_for(campaign.id, rows)
    # as Python objects: pandas would copy hundreds of MB of JSON into an Arrow string column
    rows["made_from"] = pd.Series(_made_from_new(night, campaign, rows), index=rows.index, dtype=object)
    stored = ledger.plan(night.engine, campaign.id, night.run_date, rows)
    tonight = stored[stored["state"].isin(ledger.SENDABLE)]
    pending = pd.concat([late[list(PENDING_COLUMNS)], tonight[list(PENDING_COLUMNS)]], ignore_index=True)
    others = stored[~stored["state"].isin((*ledger.SENDABLE, ledger.SENT, ledger.HELD_OUT))]
    already = int((mine["reason"] == decisions.SENT_TONIGHT).sum()) + int((stored["state"] == ledger.SENT).sum())
    return CampaignPlan(campaign, mine, pending.drop_duplicates("message_id").reset_index(drop=True), already,
                        sent_late=len(late), expired=expired, not_again=Counter(others["state"].tolist()))


def _made_from_new(night: Night, campaign: Campaign, rows: pd.DataFrame) -> list[str | None]:
    """`made_from` of the selected rows that have no ledger row yet (existing rows keep theirs)."""
    existing = ledger.existing_states(night.engine, campaign.id, rows["message_id"].tolist())
    new = (rows["state"] == ledger.PLANNED).to_numpy() & ~rows["message_id"].isin(existing.keys()).to_numpy()
    result: list[str | None] = [None] * len(rows)
    if new.any():
        for position, text in zip(np.flatnonzero(new), made_from(night, campaign, rows[new])):
            result[position] = text
    return result


def made_from(night: Night, campaign: Campaign, rows: pd.DataFrame) -> list[str]:
    """What each message will be made of, as JSON: the hashes of its files and the recommended items
    (with strategy, score and reason, in the customer's market and language), computed for the whole
    batch at once. `rows`: customer_id, variant."""
    ids = rows["customer_id"].astype("int64").to_numpy()
    items: dict[int, list] = {}
    spec = campaign.recommendations
    if spec is not None and len(ids):
        customers = _customer_contexts(night, ids)
        last_orders = _last_orders(night.data, night.features, ids) if spec.exclude_trigger_order else {}
        triggers = ({cid: [item["sku"] for item in order["items"]] for cid, order in last_orders.items()}
                    if spec.exclude_trigger_order else None)
        recs = _recommend_per_market(night, ids, customers, spec, triggers)
        items = {cid: [_localized(night, r.to_context(), customers[cid]) for r in found] for cid, found in recs.items()}
    files = {}
    out = []
    for cid, variant, context in zip(ids, rows["variant"], customer_records(night.features, ids)):
        variant = None if variant is None or pd.isna(variant) else str(variant)
        if variant not in files:
            files[variant] = made_from_files(night.project, campaign, variant)
        out.append(_made_from_text({**files[variant], "variant": variant, "items": items.get(int(cid), []),
                                    "customer": context}))
    return out


def customer_records(features: pd.DataFrame, ids) -> list[dict]:
    """The features a message's context reads (RENDERING_FEATURES), one record per customer id, as
    `made_from` keeps them: what the e-mail says about the customer is what was planned, and a batch
    renders without the night's features."""
    frame = features.reindex(ids)
    return [{"order_count": int(count) if pd.notna(count) else 0,
             "days_since_last_order": float(days) if pd.notna(days) else None,
             "last_order_id": int(order) if pd.notna(order) else None,
             "tier": _optional(tier), "previous_tier": _optional(previous)}
            for count, days, order, tier, previous in zip(*(frame[name].to_numpy(dtype=object) for name in (
                "order_count", "days_since_last_order", "last_order_id", "tier", "previous_tier")))]


_MADE_FROM_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY


def _made_from_text(record: dict) -> str:
    """A `made_from` record as JSON with sorted keys: orjson (several times json's speed, a night
    writes hundreds of thousands; a NaN is written as null), json where orjson cannot (an integer
    past 64 bits)."""
    try:
        return orjson.dumps(record, default=_json_value, option=_MADE_FROM_OPTIONS).decode()
    except orjson.JSONEncodeError:
        return json.dumps(record, sort_keys=True, default=_json_value)


def made_from_files(project: Project, campaign: Campaign, variant: str | None) -> dict:
    """sha256 of every file a message of this campaign (and arm) is made from, by project path."""
    template, _subject = arm_of(campaign, variant)
    paths = project.paths
    names = {origin for (name, _locale), compiled in project.templates.compiled.items() if name == template
             for origin, _line in compiled.origins}
    names |= {paths.relative(paths.templates_dir / template / "strings.yaml"),
              paths.relative(paths.templates_dir / "_shared" / "strings.yaml"),
              paths.relative(paths.segments_dir / f"{campaign.segment}.yaml"),
              "config/brand.yaml", "config/tracking.yaml", "config/markets.yaml"}
    return {"template": template, "files": {name: file_sha256(paths.project / name) for name in sorted(names)},
            "campaign": hashlib.sha256(json.dumps(campaign.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()}


def file_sha256(path) -> str | None:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return None


def _json_value(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    return str(value)


def arm_of(campaign: Campaign, variant: str | None) -> tuple[str, str | None]:
    """The template and subject string key of a campaign's arm (the campaign's own without one)."""
    arm = next((a for a in campaign.arms if a.name == variant), None)
    if arm is None:
        return campaign.template, None
    return arm.template or campaign.template, arm.subject


def _carried_over(night: Night, rows: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, tuple[str, str]]]:
    """Split messages of earlier nights into those sent late tonight and those expired (with why):
    past their campaign's `send_within_days`, or their customer may no longer be mailed."""
    config = night.project.config
    blocked = exclusion_reasons(night.data)
    keep, expired = [], {}
    for row in rows.itertuples(index=False):
        limit = config.campaign(row.campaign_id).send_within_days
        age = (night.run_date - row.run_date).days
        why = None
        if age > limit:
            why = f"not sent within send_within_days: {limit} of its night {row.run_date}; expired on {night.run_date}"
        elif row.customer_id not in blocked.index:
            why = "the customer is no longer in the store"
        elif isinstance(blocked.get(row.customer_id), str):
            why = f"may no longer be mailed: {blocked[row.customer_id]}"
        if why:
            expired[row.message_id] = (row.campaign_id, why)
        else:
            keep.append(row)
    return pd.DataFrame(keep, columns=rows.columns), expired


def batches(frame: pd.DataFrame, size: int, parallel: int = 1) -> list[pd.DataFrame]:
    """`frame` in batches of at most `size` rows, as even as can be, and as many as a multiple of
    `parallel` (the batches run at once) where that keeps them at least a tenth of `size`: a
    campaign's last round of batches keeps every worker busy to the end instead of leaving one batch
    to finish alone, and a small campaign is not cut into tasks costing more than their work."""
    if not len(frame):
        return []
    count, parallel = -(-len(frame) // size), max(1, parallel)
    count = max(count, min(-(-count // parallel) * parallel, len(frame) // max(1, size // 10)))
    bounds = np.linspace(0, len(frame), count + 1).round().astype(int)
    return [frame.iloc[start:end] for start, end in zip(bounds[:-1], bounds[1:])]


def build_messages(night: Night, campaign: Campaign, batch: pd.DataFrame) -> tuple[list[OutgoingMessage], dict[str, str]]:
    """Render and address one batch of ledger rows (PENDING_COLUMNS: what each message is made of is
    read from its row, the recommender is not needed); per-recipient failures are returned, not raised.
    Should a step done for the whole batch at once fail, each recipient is built alone, so only
    the recipient whose data breaks it fails."""
    try:
        return _build_batch(night, campaign, batch)
    except Exception as exc:  # noqa: BLE001
        if len(batch) <= 1:
            return [], {message_id: failure_reason(exc, int(customer_id))
                        for message_id, customer_id in zip(batch["message_id"], batch["customer_id"])}
    messages, failures = [], {}
    for start in range(len(batch)):
        try:
            built, failed = _build_batch(night, campaign, batch.iloc[start:start + 1])
        except Exception as exc:  # noqa: BLE001
            built, failed = [], {batch["message_id"].iloc[start]: failure_reason(exc, int(batch["customer_id"].iloc[start]))}
        messages += built
        failures.update(failed)
    return messages, failures


def _build_batch(night: Night, campaign: Campaign, batch: pd.DataFrame) -> tuple[list[OutgoingMessage], dict[str, str]]:
    ids = batch["customer_id"].astype("int64").to_numpy()
    made = [made_from_record(value) for value in batch["made_from"]]
    features = _batch_features(night, ids, made)
    data = night.data
    if night.partial:  # this batch's customers and last orders, read by key
        data = load_shop_part(night.engine, night.data, ids, features["last_order_id"].dropna().astype("int64"))
    customers = _customer_contexts(night, ids, data, features)
    last_orders = _last_orders(data, features, ids)
    items = _stored_items(night, campaign, ids, made, customers, last_orders)
    _localize_orders(night, customers, last_orders)
    messages, failures = [], {}
    for row, cid in zip(batch.to_dict("records"), ids):
        cid = int(cid)
        try:
            messages.append(_message(night, campaign, customers[cid], row, last_orders.get(cid), items.get(cid, [])))
        except Exception as exc:  # noqa: BLE001 - one recipient's data never stops the others
            failures[row["message_id"]] = failure_reason(exc, cid)
    return messages, failures


def _batch_features(night: Night, ids: np.ndarray, made: list[dict | None]) -> pd.DataFrame:
    """RENDERING_FEATURES of the batch's customers (index customer_id) as recorded with each row
    at planning; rows planned before Lojal recorded them read the night's features. A customer
    with two messages in the batch (one planned on an earlier night) gets the later record."""
    recorded = [m.get("customer") if m else None for m in made]
    frame = pd.DataFrame.from_records([r or {} for r in recorded], columns=list(RENDERING_FEATURES))
    missing = np.array([r is None for r in recorded], dtype=bool)
    if missing.any():
        if night.features is None:
            raise LojalError("rows planned before Lojal recorded the customer's context need the night's "
                             "features (needs_whole_night)")
        frame = frame.astype(object)
        frame.loc[missing, :] = night.features.reindex(ids[missing])[list(RENDERING_FEATURES)].to_numpy(dtype=object)
    frame.index = pd.Index(ids, name="customer_id")
    return frame[~frame.index.duplicated(keep="last")]


def _stored_items(night: Night, campaign: Campaign, ids: np.ndarray, made: list[dict | None],
                  customers: dict[int, dict], last_orders: dict[int, dict]) -> dict[int, list[dict]]:
    """The recommended items recorded with each ledger row. Rows recorded before the ledger kept
    them (no `made_from`) are recommended now, when the night has a recommender."""
    items: dict[int, list[dict]] = {}
    legacy = []
    for cid, record in zip(ids, made):
        if record is not None:
            items[int(cid)] = record.get("items", [])
        else:
            legacy.append(int(cid))
    spec = campaign.recommendations
    if legacy and spec is not None and night.recommender is not None:
        triggers = ({cid: [item["sku"] for item in last_orders[cid]["items"]] for cid in legacy if cid in last_orders}
                    if spec.exclude_trigger_order else None)
        for cid, found in _recommend_per_market(night, legacy, customers, spec, triggers).items():
            items[cid] = [_localized(night, r.to_context(), customers[cid]) for r in found]
    return items


def made_from_record(value) -> dict | None:
    """A batch row's `made_from` as a dict (None: the row was planned before Lojal recorded it),
    whether still the stored JSON or already read (runner.load_batch reads it once)."""
    if isinstance(value, dict):
        return value
    return _made_from_json(value) if isinstance(value, str) and value else None


def _made_from_json(text: str) -> dict:
    """A stored `made_from`: orjson (twice json's speed on these records), json where orjson refuses
    what json wrote (NaN)."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def _recommend_per_market(night: Night, ids, customers: dict[int, dict], spec, triggers) -> dict[int, list]:
    """Recommendations of each market's customers from the products sold there."""
    if night.catalogue is None:
        return night.recommender.recommend(ids, spec, night.features, triggers)
    by_market: dict[str, list[int]] = {}
    for cid in ids:
        by_market.setdefault(customers[int(cid)]["market"], []).append(int(cid))
    result: dict[int, list] = {}
    for market_id, group in by_market.items():
        allowed = night.catalogue.sellable(market_id, night.recommender.column_of)
        result.update(night.recommender.recommend(group, spec, night.features, triggers, allowed=allowed))
    return result


def _localize_orders(night: Night, customers: dict[int, dict], last_orders: dict[int, dict]) -> None:
    """Order items in the customer's language; prices stay what was paid, in the order's currency."""
    if night.catalogue is None:
        return
    for cid, order in last_orders.items():
        for item in order["items"]:
            night.catalogue.localize(item, None, customers[cid]["locale"], reprice=False)


def failure_reason(exc: BaseException, customer_id: int | None = None) -> str:
    """The ledger's and the report's text for a message that could not be built or handed over."""
    kind = type(exc).__name__ if isinstance(exc, LojalError) else f"unexpected {type(exc).__name__}"
    who = f"customer {customer_id}: " if customer_id is not None else ""
    return f"{who}{kind}: {exc}"[:2000]


def _optional(value):
    return None if value is None or pd.isna(value) else value


def _customer_contexts(night: Night, ids, data: ShopData | None = None,
                       features: pd.DataFrame | None = None) -> dict[int, dict]:
    """The `customer` part of the template context, for a batch at once (from the night's data and
    features unless given)."""
    customers = (data if data is not None else night.data).customers.reindex(ids)
    features = (features if features is not None else night.features).reindex(ids)
    frame = pd.DataFrame({
        "id": ids, "first_name": customers["first_name"].to_numpy(), "email": customers["email"].to_numpy(),
        "locale": customers["locale"].to_numpy(), "country": customers["country"].to_numpy(),
        "market": customers["market"].to_numpy(),
        "tier": features["tier"].to_numpy(), "previous_tier": features["previous_tier"].to_numpy(),
        "order_count": features["order_count"].fillna(0).astype(int).to_numpy(),
        "days_since_last_order": features["days_since_last_order"].to_numpy(),
        "birthday": customers["birthday"].dt.date.to_numpy(),
    })
    contexts = {}
    for record in frame.to_dict("records"):
        record["id"] = int(record["id"])
        record["order_count"] = int(record["order_count"])
        for key in ("days_since_last_order", "birthday", "tier", "previous_tier"):
            record[key] = _optional(record[key])
        record["currency"] = (night.catalogue.currency(record["market"]) if night.catalogue is not None
                              else night.project.config.brand.currency)
        contexts[record["id"]] = record
    return contexts


def _last_orders(data: ShopData, features: pd.DataFrame, customer_ids) -> dict[int, dict]:
    """The `last_order` context (with its items) of each customer in the batch who ordered."""
    order_ids = features["last_order_id"].reindex(customer_ids).dropna().astype("int64")
    if order_ids.empty:
        return {}
    lookup = data.order_lookup()
    lines = lookup.lines_of(np.unique(order_ids.to_numpy()))
    products = data.products.reindex(lines["sku"])
    items = pd.DataFrame({"order_id": lines["order_id"].to_numpy(), "sku": lines["sku"].to_numpy(),
                          "title": products["title"].to_numpy(), "quantity": lines["quantity"].astype(int).to_numpy(),
                          "unit_price": lines["unit_price"].astype(float).to_numpy(),
                          "image_url": products["image_url"].to_numpy(), "product_url": products["product_url"].to_numpy()})
    items_by_order: dict[int, list[dict]] = {}
    for record in items.to_dict("records"):
        items_by_order.setdefault(int(record.pop("order_id")), []).append(
            {k: _optional(v) if k in ("image_url", "product_url") else v for k, v in record.items()})
    heads = lookup.heads(order_ids.to_numpy())
    return {int(cid): {"id": int(oid), "placed_at": placed.to_pydatetime(), "total": float(total),
                       "currency": currency, "items": items_by_order.get(int(oid), [])}
            for cid, oid, placed, total, currency in zip(order_ids.index, order_ids.to_numpy(), heads["placed_at"],
                                                         heads["paid_total"], heads["currency"])}


def _message(night: Night, campaign: Campaign, customer: dict, row: dict, last_order: dict | None,
             items: list[dict]) -> OutgoingMessage:
    """One e-mail from its ledger row (message_id, occasion_key, variant, send_at, offer_code) and
    the items recorded with it."""
    config = night.project.config
    message_id, occasion_key = row["message_id"], row["occasion_key"]
    variant, offer_code = _text_or_none(row.get("variant")), _text_or_none(row.get("offer_code"))
    send_at = _moment_or_none(row.get("send_at"))
    template, subject_key = arm_of(campaign, variant)
    to_email = sendable(customer["email"]).email
    unsubscribe_url = signed_unsubscribe_url(config.unsubscribe_url_template, night.secrets, message_id, to_email,
                                             customer["locale"] or config.brand.default_locale)
    context = {
        "customer": customer,
        "recommendations": [dict(item, reason_params=dict(item.get("reason_params") or {})) for item in items],
        "last_order": last_order,
        "campaign": {"id": campaign.id, "name": campaign.name},
        "message": {"id": message_id, "unsubscribe_url": unsubscribe_url, "run_date": night.run_date,
                    "variant": variant, "send_at": send_at},
        "offer": {"code": offer_code} if offer_code else None,
    }
    rendered = night.project.templates.render(template, customer["locale"], context, subject_key=subject_key)
    prefix = config.tracking.category_prefix
    custom_args = {"lojal_message_id": message_id, "lojal_campaign": campaign.id,
                   "lojal_customer": str(customer["id"]), "lojal_occasion": occasion_key,
                   "lojal_run_date": night.run_date.isoformat()}
    if variant:
        custom_args["lojal_variant"] = variant
    return OutgoingMessage(
        message_id=message_id, campaign_id=campaign.id, customer_id=customer["id"],
        to_email=to_email, to_name=customer["first_name"] or "",
        from_email=config.sender.from_email, from_name=config.sender.from_name,
        reply_to=config.sender.reply_to, subject=rendered.subject, preheader=rendered.preheader,
        html=rendered.html, text=rendered.text,
        categories=(prefix, f"{prefix}-{campaign.id}", *campaign.categories,
                    *((f"{prefix}-{campaign.id}-{variant}",) if variant else ())),
        custom_args=custom_args,
        headers={"List-Unsubscribe": f"<{unsubscribe_url}>",
                 "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"},
        send_at=_future(send_at),
    )


def _text_or_none(value) -> str | None:
    return None if value is None or (not isinstance(value, str) and pd.isna(value)) else str(value)


def _moment_or_none(value) -> datetime | None:
    return None if value is None or pd.isna(value) else pd.Timestamp(value).to_pydatetime()


def _future(moment: datetime | None) -> datetime | None:
    """SendGrid's send_at: only for a moment still ahead (past ones go out at once anyway)."""
    if moment is None or moment <= datetime.now(timezone.utc).replace(tzinfo=None):
        return None
    return moment


def _localized(night: Night, item: dict, customer: dict) -> dict:
    """A recommendation at the customer's market price, titled in their language."""
    if night.catalogue is None:
        return item
    return night.catalogue.localize(item, customer["market"], customer["locale"], reprice=True)


@dataclass
class Rerendered:
    record: dict  # the ledger row, made_from parsed
    message: OutgoingMessage | None
    error: str | None  # why it could not be rendered again
    changed: list[str]  # files (and the campaign's config) that differ from what the message was made of


def rerender(paths: Paths, message_id: str) -> Rerendered:
    """Render a recorded message again from its ledger row (`lojal ledger show --render`): the same
    items, variant, send time and offer code, the store's data as of the night it was built. It is
    byte-identical to what was sent unless a file it was made of changed (`changed` names them)."""
    from lojal.errors import PlanError

    project = load_project(paths)
    engine = connect(paths.database_url)
    try:
        record = ledger.record(engine, message_id)
    finally:
        engine.dispose()
    try:
        campaign = project.config.campaign(record["campaign_id"])
    except KeyError:
        raise PlanError(f"message {message_id}: campaign {record['campaign_id']!r} is no longer in "
                        "config/campaigns.yaml, so it cannot be rendered again") from None
    changed = changed_since(project, campaign, record["made_from"])
    night_of = record["attempt_run_date"] or record["run_date"]
    batch = pd.DataFrame([{k: record.get(k) for k in PENDING_COLUMNS}])
    night = prepare_rendering_night(project, night_of)
    if needs_whole_night(night, batch):  # planned before Lojal recorded the customer's context
        night.engine.dispose()
        night = prepare_night(project, night_of, for_rendering=True)
    try:
        messages, failures = build_messages(night, campaign, batch)
    finally:
        night.engine.dispose()
    return Rerendered(record, messages[0] if messages else None, next(iter(failures.values()), None), changed)


def changed_since(project: Project, campaign: Campaign, made: dict | None) -> list[str]:
    """The files (and the campaign's settings) whose content differs from the message's record."""
    if not made:
        return ["(no record: the message was planned before Lojal recorded what sends are made of)"]
    now = made_from_files(project, campaign, made.get("variant"))
    changed = [name for name, digest in made.get("files", {}).items()
               if file_sha256(project.paths.project / name) != digest]
    changed += [f"{name} (now used, not before)" for name in now["files"] if name not in made.get("files", {})]
    if now["campaign"] != made.get("campaign"):
        changed.append(f"config/campaigns.yaml (campaign {campaign.id})")
    return changed


def deliver(engine: Engine, backend: DeliveryBackend, messages: list[OutgoingMessage], night: date,
            settings: Delivery, tally: Tally | None = None) -> BatchOutcome:
    """Send one batch in windows of `settings.window_size` messages: each window is committed
    `sending` before its requests leave and settled per message after, so a crash leaves at most
    one window unsettled (`lojal.delivery.reconcile` settles it). Messages that failed retryably get
    retry passes (pausing `retry_pause_seconds`, doubling) up to `max_attempts`. The campaign pauses
    when its error rate passes `pause_error_rate` (`tally` spans its batches): the rest stay planned.
    DeliveryAuthError (401/403) settles what the window's other requests got, puts the refused ones
    back to failed (sent by a later run once the key is fixed) and stops the run."""
    tally = tally or Tally()
    outcome = BatchOutcome()
    queue, number = list(messages), 0
    while queue and not tally.paused:
        if number:
            time.sleep(min(60.0, settings.retry_pause_seconds * 2 ** (number - 1)))
        queue = _delivery_pass(engine, backend, queue, night, settings, tally, outcome)
        number += 1
    outcome.paused = tally.paused
    return outcome


def _delivery_pass(engine: Engine, backend: DeliveryBackend, queue: list[OutgoingMessage], night: date,
                   settings: Delivery, tally: Tally, outcome: BatchOutcome) -> list[OutgoingMessage]:
    """One pass over `queue` in windows of `settings.window_size` (at least `backend.concurrency`);
    returns the messages to try again. A window's results are settled in the same transaction that
    claims the next window (one commit per window); the first window is claimed on its own."""
    retry: list[OutgoingMessage] = []
    size = max(settings.window_size, int(backend.concurrency))
    windows = [queue[start:start + size] for start in range(0, len(queue), size)]
    attempts = ledger.claim(engine, [m.message_id for m in windows[0]], night, backend.name) if windows else {}
    with engine.connect() as conn:  # one connection for the pass: no pool check-out per window
        for number, candidates in enumerate(windows):
            window = [m for m in candidates if m.message_id in attempts]
            results = _send_window(engine, backend, window, attempts, night, settings) if window else []
            _tally(tally, results)
            tally.paused = pause_reason(tally, settings)
            following = windows[number + 1] if number + 1 < len(windows) and not tally.paused else []
            settled, attempts = ledger.settle_and_claim(conn, results, attempts, night, settings.max_attempts,
                                                        [m.message_id for m in following], backend.name)
            _count(outcome, results, settled)
            by_id = {m.message_id: m for m in window}
            retry += [by_id[s.message_id] for s in settled if s.state == ledger.FAILED]
            if tally.paused:
                break
    return retry


def _send_window(engine: Engine, backend: DeliveryBackend, window: list[OutgoingMessage], attempts: dict[str, int],
                 night: date, settings: Delivery) -> list[DeliveryResult]:
    try:
        return backend.send_batch(window)
    except DeliveryAuthError as exc:
        done = [r for r in exc.results if r is not None]
        ledger.settle(engine, done, attempts, night, settings.max_attempts)
        ledger.release(engine, [m.message_id for m in window], f"not sent: {exc}")  # the refused ones
        raise
    except DeliveryError:
        raise
    except Exception:  # noqa: BLE001 - one message the backend cannot take fails alone
        return _one_by_one(backend, window)


def _tally(tally: Tally, results: list[DeliveryResult]) -> None:
    tally.attempts += len(results)
    tally.errors += sum(result.outcome != ledger.SENT for result in results)


def _count(outcome: BatchOutcome, results: list[DeliveryResult], settled: list) -> None:
    for result, final in zip(results, settled):
        outcome.attempts += 1
        if result.outcome != ledger.SENT:
            outcome.errors += 1
        outcome.failed.pop(result.message_id, None)  # an earlier pass's failure, retried now
        if final.state == ledger.SENT:
            outcome.states[ledger.SENT] += 1
            outcome.delivered += not result.duplicate
            outcome.duplicates += result.duplicate
            continue
        outcome.failed[result.message_id] = f"{final.state}: {final.error or 'no reason given'}"
        if final.state != ledger.FAILED:  # failed is not final: a retry pass may follow
            outcome.states[final.state] += 1


def _one_by_one(backend: DeliveryBackend, messages: list[OutgoingMessage]) -> list[DeliveryResult]:
    """Hand messages over one at a time (backends are idempotent by message id), turning what a
    single message raises into that message's failure."""
    results = []
    for message in messages:
        try:
            results += backend.send_batch([message])
        except DeliveryError:
            raise
        except Exception as exc:  # noqa: BLE001
            results.append(DeliveryResult(message.message_id, FAILED, error=failure_reason(exc, message.customer_id)))
    return results


@dataclass
class CampaignSummary:
    campaign_id: str
    name: str
    matched: int
    selected: int
    excluded: dict[str, int]
    already_sent: int
    sent_late: int = 0
    expired: int = 0
    rendered: int = 0
    delivered: int = 0
    duplicates: int = 0
    failed: int = 0  # not delivered tonight: rejected, unknown, abandoned, still failed, not built
    rejected: int = 0
    unknown: int = 0
    abandoned: int = 0
    retries: int = 0  # attempts beyond the first per message
    held_out: int = 0  # in the campaign's holdout group tonight (recorded, never sent)
    paused: str | None = None
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def summary_for(plan: CampaignPlan) -> CampaignSummary:
    """The campaign's line of the run summary: matched (its decision rows), excluded by the reason's
    words (held out included), selected (sent tonight or late)."""
    rows = plan.decisions
    not_selected = rows[(rows["decision"] != decisions.SELECTED).to_numpy()]
    excluded = Counter({str(k): int(v) for k, v in not_selected["detail"].fillna(not_selected["reason"]).value_counts().items()})
    sent_tonight = decisions.REASONS[decisions.SENT_TONIGHT]
    rerun = plan.already_sent - excluded[sent_tonight]
    if rerun > 0:
        excluded[sent_tonight] += rerun
    for state, count in plan.not_again.items():
        excluded[f"{state} on an earlier run, not sent again"] = count
    held = int((rows["decision"] == decisions.HELD_OUT).sum())
    return CampaignSummary(plan.campaign.id, plan.campaign.name, len(rows), len(plan.pending),
                           dict(excluded.most_common()), plan.already_sent, plan.sent_late, plan.expired,
                           held_out=held)


def record_batch(summary: CampaignSummary, rendered: int, outcome: BatchOutcome, render_failures: dict[str, str]) -> None:
    summary.rendered += rendered
    summary.delivered += outcome.delivered
    summary.duplicates += outcome.duplicates
    summary.failed += len(outcome.failed) + len(render_failures)
    summary.rejected += outcome.states[ledger.REJECTED]
    summary.unknown += outcome.states[ledger.UNKNOWN]
    summary.abandoned += outcome.states[ledger.ABANDONED]
    summary.retries += max(0, outcome.attempts - rendered)
    summary.paused = summary.paused or outcome.paused
    summary.errors.extend(list({**outcome.failed, **render_failures}.values())[: max(0, 5 - len(summary.errors))])


__all__ = ["Project", "Night", "CampaignPlan", "Tally", "load_project", "check_project", "prepare_night",
           "planning_moment", "decide_night", "decide_campaigns", "record_campaign", "rerender", "changed_since", "plan_campaigns", "made_from", "made_from_files", "arm_of", "build_messages", "deliver", "pause_reason", "batches", "summary_for", "record_batch"]
