"""What operators and marketers read after a run: markdown for Prefect artifacts, and under
`<state>/runs/<date>/` a JSON summary per run plus `report.html` with the funnel chart."""

from __future__ import annotations

import json
from datetime import date, datetime, timezone
from html import escape
from pathlib import Path

from lojal.charts import funnel_svg, legend_html, text_bar
from lojal.paths import Paths


def campaign_markdown(summary, run_date: date) -> str:
    s = summary if isinstance(summary, dict) else summary.as_dict()
    steps = [("matched the segment", s["matched"]),
             *((f"− excluded: {reason}", count) for reason, count in s["excluded"].items()),
             ("selected tonight", s["selected"]), ("rendered", s["rendered"]),
             ("delivered", s["delivered"]), ("failed", s["failed"])]
    if s.get("duplicates"):
        steps.append(("delivered earlier, not again", s["duplicates"]))
    for key, step in (("sent_late", "of the selected: planned on an earlier night, sent late"),
                      ("expired", "planned on an earlier night, expired"), ("rejected", "rejected by the provider"),
                      ("unknown", "outcome unknown (`lojal delivery unknown`)"), ("abandoned", "abandoned")):
        if s.get(key):
            steps.append((step, s[key]))
    lines = [f"# {s['name']} (`{s['campaign_id']}`) — {run_date}", "",
             "| step | customers | |", "|---|---:|---|",
             *(f"| {step} | {count} | {text_bar(count, s['matched'])} |" for step, count in steps)]
    if s.get("paused"):
        lines += ["", f"**{s['paused']}**"]
    if s.get("errors"):
        lines += ["", "First errors:", *[f"- {e}" for e in s["errors"]]]
    return "\n".join(lines)


def night_markdown(summaries: list[dict], run_date: date, outbox: Path, report: Path) -> str:
    largest = max([s["delivered"] for s in summaries] + [0])
    lines = [f"# Nightly retention run — {run_date}", "",
             "| campaign | matched | excluded | selected | rendered | delivered | failed | |",
             "|---|---:|---:|---:|---:|---:|---:|---|"]
    for s in summaries:
        lines.append(f"| {s['campaign_id']} | {s['matched']} | {sum(s['excluded'].values())} | {s['selected']} "
                     f"| {s['rendered']} | {s['delivered']} | {s['failed']} | {text_bar(s['delivered'], largest)} |")
    total = sum(s["delivered"] for s in summaries)
    lines += ["", f"**{total} messages delivered.** Outbox: `{outbox}` (open `index.html`); "
              f"funnel chart: `{report}`."]
    return "\n".join(lines + _failure_lines(summaries))


def _failure_lines(summaries: list[dict]) -> list[str]:
    """The failed messages, with customer ids (the first few per campaign), for artifacts."""
    failed = sum(s["failed"] for s in summaries)
    if not failed:
        return []
    return ["", f"**{failed} message(s) failed** (retried next run; `lojal runs show` lists them):",
            *(f"- `{s['campaign_id']}`: {e}" for s in summaries for e in s.get("errors", []))]


def morning_markdown(night: date, runs: list[dict]) -> str:
    """The morning report's artifact: every run of the night, newest first, and what failed."""
    lines = [f"# The night of {night}", ""]
    if not runs:
        return "\n".join(lines + ["**No nightly run.** Is the nightly deployment scheduled and being served?"])
    lines += ["| run | status | started (UTC) | delivered | failed | error |", "|---:|---|---|---:|---:|---|"]
    for run in runs:
        campaigns = run["campaigns"] or []
        error = (run.get("error") or "").splitlines()[0] if run.get("error") else ""
        lines.append(f"| {run['id']} | {run['status']} | {str(run['started_at'])[:16]} | "
                     f"{sum(c['delivered'] for c in campaigns)} | {sum(c['failed'] for c in campaigns)} | {error} |")
    return "\n".join(lines + _failure_lines(runs[0]["campaigns"] or []))


def write_run_report(paths: Paths, run_date: date, summaries: list[dict]) -> Path:
    """The run's JSON summary (one per run, kept) and the date's `report.html` (the latest run),
    whose path is returned."""
    folder = paths.state / "runs" / run_date.isoformat()
    folder.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    (folder / f"summary-{stamp}.json").write_text(
        json.dumps({"run_date": run_date.isoformat(), "campaigns": summaries}, indent=2, ensure_ascii=False),
        encoding="utf-8")
    page = folder / "report.html"
    page.write_text(run_report_html(summaries, run_date), encoding="utf-8")
    return page


_STYLE = ("body{font-family:system-ui,sans-serif;margin:2rem;color:#222}svg text{font-size:13px}"
          "table{border-collapse:collapse;margin-top:1rem}td,th{padding:.25rem .75rem;border-bottom:1px solid #ddd;"
          "text-align:left}td.n{text-align:right}.legend{list-style:none;padding:0;display:flex;flex-wrap:wrap;"
          "gap:.4rem 1.2rem}.legend span{display:inline-block;width:.9rem;height:.9rem;margin-right:.35rem;"
          "vertical-align:-.1rem}")


def run_report_html(summaries: list[dict], run_date: date) -> str:
    """A page for marketers: the funnel chart, then every campaign's numbers and exclusion reasons."""
    total = sum(s["delivered"] for s in summaries)
    rows = []
    for s in summaries:
        reasons = "<br>".join(f"{escape(reason)}: {count:,}" for reason, count in s["excluded"].items()) or "–"
        rows.append(f"<tr><td>{escape(s['campaign_id'])}</td><td>{escape(s['name'])}</td><td class=n>{s['matched']:,}</td>"
                    f"<td class=n>{s['selected']:,}</td><td class=n>{s['delivered']:,}</td><td class=n>{s['failed']:,}</td>"
                    f"<td>{reasons}</td></tr>")
    failures = "".join(f"<li><code>{escape(s['campaign_id'])}</code>: {escape(error)}</li>"
                       for s in summaries for error in s.get("errors", []))
    failed = (f'<h2>Why messages failed</h2><p>The first reasons per campaign; every failed message and its reason '
              f'is in the send ledger.</p><ul id="failures">{failures}</ul>') if failures else ""
    outbox = f"../../outbox/{run_date.isoformat()}/index.html"
    return (f'<!doctype html><html lang="en"><meta charset="utf-8"><title>Lojal run {run_date}</title>'
            f"<style>{_STYLE}</style><h1>Nightly run {run_date}</h1>"
            f'<p>{total:,} messages delivered tonight. <a href="{outbox}">Open the outbox</a>.</p>'
            f"<h2>Customers matched per campaign, and what happened to them</h2>{funnel_svg(summaries)}{legend_html(summaries)}"
            "<table><tr><th>campaign</th><th>name</th><th>matched</th><th>selected</th><th>delivered</th>"
            f"<th>failed</th><th>excluded, why</th></tr>{''.join(rows)}</table>{failed}</html>")
