"""Dry runs and their decision logs: `<state>/plans/<date>/decisions.parquet` and `.csv`, the
funnel per campaign, and the comparison of two nights (`lojal plan diff`).

A dry run decides exactly as a real run does (lojal.decisions via `pipeline.decide_night`) and
writes nothing but its plan: no ledger row, no expired message, no reconciliation, no run record.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pandas as pd

from lojal import decisions, ledger
from lojal.errors import PlanError
from lojal.paths import Paths

LOG_COLUMNS = ("customer_id", "campaign", "decision", "reason", "detail", "variant", "send_at", "offer_code",
               "occasion_key", "priority")


def plan_dir(paths: Paths, run_date: date) -> Path:
    return paths.state / "plans" / run_date.isoformat()


def dry_run(paths: Paths, run_date: date, only: str | None = None, progress=lambda _: None) -> dict:
    """Decide tonight without recording anything; write the decision log; return the funnel."""
    from lojal import pipeline

    project = pipeline.load_project(paths)
    if only is not None:
        check_campaign(project.config, only)
    night = pipeline.prepare_night(project, run_date, progress)
    try:
        enabled = [c.id for c in project.config.campaigns.enabled if only is None or c.id == only]
        carried, _expired = pipeline._carried_over(night, ledger.carried_rows(night.engine, enabled, run_date))
        progress("deciding")
        log = pipeline.decide_night(night, carried, only)
    finally:
        night.engine.dispose()
    parquet, csv = write_plan(paths, run_date, log)
    return {"run_date": run_date.isoformat(), "dry_run": True, "plan": str(parquet), "plan_csv": str(csv),
            "funnel": funnel_records(log)}


def check_campaign(config, campaign_id: str) -> None:
    """A clear error for `--campaign` naming no enabled campaign."""
    enabled = [c.id for c in config.campaigns.enabled]
    if campaign_id not in enabled:
        raise PlanError(f"--campaign {campaign_id}: no enabled campaign has this id in config/campaigns.yaml; "
                        f"use one of: {', '.join(enabled)}")


def write_plan(paths: Paths, run_date: date, log: pd.DataFrame) -> tuple[Path, Path]:
    folder = plan_dir(paths, run_date)
    folder.mkdir(parents=True, exist_ok=True)
    frame = log[list(LOG_COLUMNS)].copy()
    for column in ("campaign", "decision", "reason", "detail", "variant", "offer_code", "occasion_key"):
        frame[column] = frame[column].astype("string")
    parquet, csv = folder / "decisions.parquet", folder / "decisions.csv"
    frame.to_parquet(parquet, index=False)
    frame.to_csv(csv, index=False, date_format="%Y-%m-%dT%H:%M:%SZ")
    return parquet, csv


def read_plan(paths: Paths, run_date: date) -> pd.DataFrame:
    path = plan_dir(paths, run_date) / "decisions.parquet"
    if not path.is_file():
        raise PlanError(f"no plan for {run_date}: {paths.relative(path)} does not exist; write it with "
                        f"`lojal run --date {run_date} --dry-run`")
    return pd.read_parquet(path)


def funnel_records(log: pd.DataFrame) -> list[dict]:
    """The funnel per campaign as rows (for the CLI, the summary and the Prefect table artifact):
    campaign, considered, selected, held_out, then each reason's count (0 where none)."""
    if log.empty:
        return []
    table = decisions.funnel(log)
    reasons = [c for c in decisions.REASONS if c in table.columns and c != decisions.HELD_OUT]
    records = []
    for campaign, row in table.iterrows():
        record = {"campaign": str(campaign), "considered": int(row["considered"]),
                  "selected": int(row.get(decisions.SELECTED, 0)), "held_out": int(row.get(decisions.HELD_OUT, 0))}
        record.update({reason: int(row[reason]) for reason in reasons})
        records.append(record)
    priority = log.drop_duplicates("campaign").set_index("campaign")["priority"]
    return sorted(records, key=lambda r: -int(priority.get(r["campaign"], 0)))


@dataclass
class PlanDiff:
    changes: pd.DataFrame  # customer_id, campaign, change (entered/left), before, after (decision or reason)
    counts: pd.DataFrame  # per campaign: selected_before, selected_after, entered, left


def diff(before: pd.DataFrame, after: pd.DataFrame) -> PlanDiff:
    """Who enters and who leaves each campaign's selection between two nights' logs, with what
    they were decided on the other night (a reason, or `not considered`)."""
    def outcome(log):
        return log.assign(outcome=log["reason"].astype("object").where(log["decision"] != decisions.SELECTED,
                                                                      decisions.SELECTED))
    a, b = outcome(before), outcome(after)
    joined = a[["customer_id", "campaign", "outcome"]].merge(b[["customer_id", "campaign", "outcome"]],
                                                             on=["customer_id", "campaign"], how="outer",
                                                             suffixes=("_before", "_after"))
    joined = joined.fillna({"outcome_before": "not considered", "outcome_after": "not considered"})
    was, now = joined["outcome_before"] == decisions.SELECTED, joined["outcome_after"] == decisions.SELECTED
    changes = joined[was != now].assign(change=lambda f: (f["outcome_after"] == decisions.SELECTED).map(
        {True: "entered", False: "left"}))
    changes = changes.rename(columns={"outcome_before": "before", "outcome_after": "after"})
    changes = changes[["customer_id", "campaign", "change", "before", "after"]].sort_values(["campaign", "change", "customer_id"])
    campaigns = sorted(set(a["campaign"]) | set(b["campaign"]))
    counts = pd.DataFrame({
        "selected_before": a[a["decision"] == decisions.SELECTED].groupby("campaign").size(),
        "selected_after": b[b["decision"] == decisions.SELECTED].groupby("campaign").size(),
        "entered": changes[changes["change"] == "entered"].groupby("campaign").size(),
        "left": changes[changes["change"] == "left"].groupby("campaign").size(),
    }).reindex(campaigns).fillna(0).astype(int)
    return PlanDiff(changes.reset_index(drop=True), counts)
