"""The nightly retention run: one `nightly` flow, one `campaign` subflow per campaign, tasks
over batches of recipients (never one task per recipient).

Heavy data (frames, the fitted recommender, compiled templates) stays in this process and is
never a Prefect parameter: subflows receive the run's key, tasks receive `quote()`d objects,
and no task caches (hashing large frames as cache keys costs more than the work).

No `from __future__ import annotations` here: Prefect builds the parameter schema from the flow's
annotations in the process that serves a deployment, where postponed (string) annotations failed
every run with pydantic's forward-reference error.
"""

import uuid
from datetime import date

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NONE as NO_CACHE
from prefect.runtime import flow_run as current_flow_run
from prefect.states import Failed
from prefect.utilities.annotations import quote

from lojal import pipeline, plans, runlog, schedule
from lojal.delivery import backend_for
from lojal.delivery.faults import FailAfter
from lojal.delivery.reconcile import Policy, reconcile
from lojal.errors import LojalError
from lojal.paths import Paths
from lojal.progress import observer
from lojal.runlock import RunLock
from lojal.store import connect
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
def plan_campaigns(night: pipeline.Night, only: str | None = None) -> list[pipeline.CampaignPlan]:
    plans_ = pipeline.plan_campaigns(night, only)
    _funnel_artifact(plans.funnel_records(night.decisions), night.run_date)
    return plans_


def _funnel_artifact(funnel: list[dict], run_date: date) -> None:
    """The decision funnel per campaign (considered, selected, held out, each reason) as a table."""
    if not funnel:
        return
    create_table_artifact(funnel, key="nightly-funnel",
                          description=f"Who was selected, held out or excluded and why, per campaign, on {run_date}")


@task(cache_policy=NO_CACHE, task_run_name="{campaign_id}-batch-{number}")
def send_batch(night: pipeline.Night, backend, plan: pipeline.CampaignPlan, batch, tally: pipeline.Tally,
               campaign_id: str, number: int) -> tuple[int, pipeline.BatchOutcome, dict[str, str]]:
    settings = night.project.config.sender.delivery
    messages, render_failures = pipeline.build_messages(night, plan.campaign, batch)
    pipeline.ledger.fail_unbuilt(night.engine, render_failures, settings.max_attempts)
    outcome = pipeline.deliver(night.engine, backend, messages, night.run_date, settings, tally)
    observer().advanced(campaign_id, len(batch))
    outcome.failed = _naming_customers(batch, outcome.failed)
    return len(messages), outcome, _naming_customers(batch, render_failures)


def _naming_customers(batch, failures: dict[str, str]) -> dict[str, str]:
    """Errors as operators read them (artifact, report, `lojal runs show`): 'customer <id>: <error>'."""
    customers = dict(zip(batch["message_id"], batch["customer_id"]))
    named = {m: f"customer {int(customers[m])}: " for m in failures}
    return {m: error if error.startswith(named[m]) else named[m] + error for m, error in failures.items()}


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


def _night_name() -> str:
    """`nightly-<date>`, known before the run starts (Prefect calls this to name the flow run)."""
    return f"nightly-{schedule.flow_run_night()}"


@flow(name="nightly", flow_run_name=_night_name)
def nightly(run_date: date | None = None, project_dir: str | None = None,
            fail_after: int | None = None, delivery: str | None = None,
            dry_run: bool = False, campaign: str | None = None) -> dict:
    """Run tonight's campaigns. `delivery` (outbox, sendgrid) overrides config/sender.yaml for this
    run; `fail_after` injects a delivery fault after N messages (drills). `dry_run`: decide only,
    write the decision log under <state>/plans/<date>/ and nothing else (lojal.plans). `campaign`:
    run this campaign alone, the others untouched.

    Without `run_date` the night is the scheduled time's date in the shop's zone. One run per store at
    a time: a second one stops at once naming the first (lojal.runlock), and is recorded as failed. A
    night where a message failed to render or send ends Failed (its message says partial), for
    automations."""
    run_date = schedule.night_of(run_date, project_dir, current_flow_run.scheduled_start_time)
    if dry_run:
        result = plans.dry_run(Paths.resolve(project_dir), run_date, campaign, progress=observer().stage)
        _funnel_artifact(result["funnel"], run_date)
        return result
    run = _RunRecord.start(project_dir, run_date)
    summaries: list[dict] = []
    try:
        project = load_project(project_dir)
        _tag_flow_run(schedule.run_tags(project.config.brand.name, project.config.schedule.environment))
        if campaign is not None:
            plans.check_campaign(project.config, campaign)
        result = _locked_night(project, run_date, fail_after, delivery, summaries, run.run_id, campaign)
    except BaseException as exc:
        run.finish(runlog.FAILED, summaries, error=_one_line(exc))
        raise
    failed = sum(s["failed"] for s in summaries)
    run.finish(runlog.PARTIAL if failed else runlog.COMPLETED, summaries)
    create_markdown_artifact(night_markdown(summaries, run_date, result["outbox"], result["report"]),
                             key="nightly-summary", description=f"Nightly retention run for {run_date}")
    if failed:
        return Failed(message=f"partial: {failed} message(s) failed to render or send on {run_date} "
                              "(see the campaign artifacts; they are retried next run)", data=result)
    return result


def _locked_night(project: pipeline.Project, run_date: date, fail_after: int | None, delivery: str | None,
                  summaries: list[dict], run_id: int | None, only: str | None = None) -> dict:
    engine = connect(project.paths.database_url)
    require_schema(engine)
    lock = RunLock(engine, run_date)
    try:
        runlog.mark_interrupted(engine, keep=run_id)
        return _deliver_night(project, run_date, fail_after, delivery, summaries, only)
    finally:
        lock.release()
        engine.dispose()


def _deliver_night(project: pipeline.Project, run_date: date, fail_after: int | None, delivery: str | None,
                   summaries: list[dict], only: str | None = None) -> dict:
    backend = backend_for(project.config, project.paths, run_date, delivery)
    if fail_after is not None:
        backend = FailAfter(backend, fail_after)
    run_key = uuid.uuid4().hex
    try:
        night = prepare_night(quote(project), run_date)
        reconciled = reconcile_unsettled(quote(night))
        night.plans = plan_campaigns(quote(night), only)
        _NIGHTS[run_key] = (night, backend)
        for plan in night.plans:
            summaries.append(campaign(plan.campaign.id, run_key))
    finally:
        _NIGHTS.pop(run_key, None)
        backend.finish()
    outbox = project.paths.outbox_dir(run_date)
    report = write_run_report(project.paths, run_date, summaries)
    return {"run_date": run_date.isoformat(), "delivery": backend.name, "outbox": str(outbox),
            "report": str(report), "reconciled": reconciled, "campaigns": summaries,
            "funnel": plans.funnel_records(night.decisions)}


class _RunRecord:
    """The run's row in the store's `runs` table, written from the start so that runs failing before
    delivery (a broken template, a store awaiting `lojal db upgrade`) are listed by `lojal runs` too.
    Where the store cannot hold it (no tables, unreachable), the run goes on unrecorded."""

    def __init__(self, engine=None, run_id: int | None = None):
        self.engine, self.run_id = engine, run_id

    @classmethod
    def start(cls, project_dir: str | None, run_date: date) -> "_RunRecord":
        try:
            engine = connect(Paths.resolve(project_dir).database_url)
            return cls(engine, runlog.start_run(engine, run_date, current_flow_run.id))
        except Exception as exc:  # no runs table yet, database unreachable: said when the run needs it
            get_run_logger().warning("this run is not recorded in the store's runs table: %s", _one_line(exc))
            return cls()

    def finish(self, status: str, summaries: list[dict], error: str | None = None) -> None:
        if self.run_id is None:
            return
        try:
            runlog.finish_run(self.engine, self.run_id, status, summaries, error=error)
        except Exception as exc:  # never hide why the run stopped behind a failure to record it
            get_run_logger().error("could not record run %s as %s: %s", self.run_id, status, _one_line(exc))
            if error is None:
                raise


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text if isinstance(exc, LojalError) else f"{type(exc).__name__}: {text}"


def _tag_flow_run(tags: list[str]) -> None:
    """Add the shop and environment tags to this flow run (however it was started)."""
    from prefect.client.orchestration import get_client

    run_id = current_flow_run.id
    if run_id is None:
        return
    with get_client(sync_client=True) as client:
        existing = client.read_flow_run(run_id).tags
        client.update_flow_run(run_id, tags=sorted(set(existing) | set(tags)))
