"""The nightly retention run: one `nightly` flow, one `campaign` subflow per campaign, tasks
over batches of recipients (never one task per recipient).

Heavy data (frames, the fitted recommender, compiled templates) stays in this process and is
never a Prefect parameter: subflows receive the run's key, tasks receive `quote()`d objects,
and no task caches (hashing large frames as cache keys costs more than the work).
"""

from __future__ import annotations

import uuid
from datetime import date

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NONE as NO_CACHE
from prefect.utilities.annotations import quote

from lojal import pipeline, runlog
from lojal.delivery import backend_for
from lojal.delivery.faults import FailAfter
from lojal.delivery.reconcile import Policy, reconcile
from lojal.paths import Paths
from lojal.progress import observer
from lojal.runlock import RunLock
from lojal.store import connect, shop_today
from lojal.store.db import require_schema
from lojal.report import campaign_markdown, night_markdown, write_run_report

_NIGHTS: dict[str, tuple[pipeline.Night, object]] = {}


@task(cache_policy=NO_CACHE)
def load_project(project_dir: str | None) -> pipeline.Project:
    return pipeline.load_project(Paths.resolve(project_dir))


@task(cache_policy=NO_CACHE)
def prepare_night(project: pipeline.Project, run_date: date) -> pipeline.Night:
    return pipeline.prepare_night(project, run_date, progress=observer().stage)


@task(cache_policy=NO_CACHE)
def reconcile_unsettled(night: pipeline.Night) -> dict[str, int]:
    """Settle rows a stopped run left `sending` and `unknown` ones from the provider's events,
    before anything is planned or resent."""
    settings = night.project.config.sender.delivery
    policy = Policy(settings.unknown_grace_minutes, settings.unknown_settle_hours, settings.max_attempts)
    moved = reconcile(night.engine, policy, night.project.paths.state / "outbox")
    if moved:
        get_run_logger().info("reconciled: %s", ", ".join(f"{k}: {v}" for k, v in sorted(moved.items())))
    return dict(moved)


@task(cache_policy=NO_CACHE)
def plan_campaigns(night: pipeline.Night) -> list[pipeline.CampaignPlan]:
    return pipeline.plan_campaigns(night)


@task(cache_policy=NO_CACHE, task_run_name="{campaign_id}-batch-{number}")
def send_batch(night: pipeline.Night, backend, plan: pipeline.CampaignPlan, batch, tally: pipeline.Tally,
               campaign_id: str, number: int) -> tuple[int, pipeline.BatchOutcome, dict[str, str]]:
    settings = night.project.config.sender.delivery
    messages, render_failures = pipeline.build_messages(night, plan.campaign, batch)
    pipeline.ledger.fail_unbuilt(night.engine, render_failures, settings.max_attempts)
    outcome = pipeline.deliver(night.engine, backend, messages, night.run_date, settings, tally)
    observer().advanced(campaign_id, len(batch))
    return len(messages), outcome, render_failures


@flow(name="campaign", flow_run_name="{campaign_id}")
def campaign(campaign_id: str, run_key: str) -> dict:
    night, backend = _NIGHTS[run_key]
    plan = next(p for p in night.plans if p.campaign.id == campaign_id)
    summary = pipeline.summary_for(plan)
    size = night.project.config.sender.delivery.batch_size
    observer().campaign_started(campaign_id, len(plan.pending))
    tally = pipeline.Tally()
    for number, batch in enumerate(pipeline.batches(plan.pending, size), start=1):
        rendered, outcome, failures = send_batch(quote(night), quote(backend), quote(plan), quote(batch),
                                                 quote(tally), campaign_id, number)
        pipeline.record_batch(summary, rendered, outcome, failures)
        if tally.paused:
            get_run_logger().warning("%s %s", campaign_id, tally.paused)
            break
    create_markdown_artifact(campaign_markdown(summary, night.run_date),
                             key=f"campaign-{campaign_id.replace('_', '-')}",
                             description=f"Funnel of campaign {campaign_id} on {night.run_date}")
    get_run_logger().info("%s: %d selected, %d delivered, %d failed", campaign_id,
                          summary.selected, summary.delivered, summary.failed)
    return summary.as_dict()


@flow(name="nightly", flow_run_name="nightly-{run_date}")
def nightly(run_date: date | None = None, project_dir: str | None = None,
            fail_after: int | None = None, delivery: str | None = None) -> dict:
    """Run tonight's campaigns. `delivery` (outbox, sendgrid) overrides config/sender.yaml for this
    run; `fail_after` injects a delivery fault after N messages (drills). One run per store at a
    time: a second one stops at once naming the first (lojal.runlock)."""
    project = load_project(project_dir)
    run_date = run_date or shop_today(project.config.brand.timezone)
    engine = connect(project.paths.database_url)
    require_schema(engine)
    lock = RunLock(engine, run_date)
    try:
        runlog.mark_interrupted(engine)
        return _locked_night(project, run_date, fail_after, delivery)
    finally:
        lock.release()
        engine.dispose()


def _locked_night(project: pipeline.Project, run_date: date, fail_after: int | None, delivery: str | None) -> dict:
    backend = backend_for(project.config, project.paths, run_date, delivery)
    if fail_after is not None:
        backend = FailAfter(backend, fail_after)
    run_id = None
    summaries: list[dict] = []
    run_key = uuid.uuid4().hex
    try:
        night = prepare_night(quote(project), run_date)
        run_id = runlog.start_run(night.engine, run_date)
        reconciled = reconcile_unsettled(quote(night))
        night.plans = plan_campaigns(quote(night))
        _NIGHTS[run_key] = (night, backend)
        for plan in night.plans:
            summaries.append(campaign(plan.campaign.id, run_key))
    except BaseException:
        if run_id is not None:
            runlog.finish_run(night.engine, run_id, "failed", summaries)
        raise
    finally:
        _NIGHTS.pop(run_key, None)
        backend.finish()
    runlog.finish_run(night.engine, run_id, "completed", summaries)
    outbox = project.paths.outbox_dir(run_date)
    report = write_run_report(project.paths, run_date, summaries)
    create_markdown_artifact(night_markdown(summaries, run_date, outbox, report), key="nightly-summary",
                             description=f"Nightly retention run for {run_date}")
    return {"run_date": run_date.isoformat(), "delivery": backend.name, "outbox": str(outbox),
            "report": str(report), "reconciled": reconciled, "campaigns": summaries}
