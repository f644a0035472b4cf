"""What operators and marketers read after a run: markdown for Prefect artifacts, a JSON report
under `<state>/runs/<date>/`, and a rich table for the terminal."""

from __future__ import annotations

import json
from datetime import date, datetime, timezone
from pathlib import Path

from lojal.paths import Paths


def campaign_markdown(summary, run_date: date) -> str:
    s = summary if isinstance(summary, dict) else summary.as_dict()
    lines = [f"# {s['name']} (`{s['campaign_id']}`) — {run_date}", "",
             "| step | customers |", "|---|---:|",
             f"| matched the segment | {s['matched']} |"]
    for reason, count in s["excluded"].items():
        lines.append(f"| − excluded: {reason} | {count} |")
    lines += [f"| selected tonight | {s['selected']} |",
              f"| rendered | {s['rendered']} |",
              f"| delivered | {s['delivered']} |",
              f"| failed | {s['failed']} |"]
    if s.get("duplicates"):
        lines.append(f"| delivered earlier, not again | {s['duplicates']} |")
    if s.get("errors"):
        lines += ["", "First errors:", *[f"- {e}" for e in s["errors"]]]
    return "\n".join(lines)


def night_markdown(summaries: list[dict], run_date: date, outbox: Path) -> str:
    lines = [f"# Nightly retention run — {run_date}", "",
             "| campaign | matched | excluded | selected | rendered | delivered | failed |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for s in summaries:
        lines.append(f"| {s['campaign_id']} | {s['matched']} | {sum(s['excluded'].values())} | {s['selected']} "
                     f"| {s['rendered']} | {s['delivered']} | {s['failed']} |")
    total = sum(s["delivered"] for s in summaries)
    lines += ["", f"**{total} messages delivered.** Outbox: `{outbox}` (open `index.html`)."]
    return "\n".join(lines)


def write_run_report(paths: Paths, run_date: date, summaries: list[dict]) -> Path:
    folder = paths.state / "runs" / run_date.isoformat()
    folder.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    report = folder / f"summary-{stamp}.json"
    report.write_text(json.dumps({"run_date": run_date.isoformat(), "campaigns": summaries},
                                 indent=2, ensure_ascii=False), encoding="utf-8")
    return report
