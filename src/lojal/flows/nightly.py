"""The nightly retention run: one `nightly` flow, one `campaign` subflow per campaign, tasks
over batches of recipients (never one task per recipient).

Loading, planning and the campaign subflows run in the flow's process, once. Each batch task takes
small parameters (project dir, run date, a fingerprint of the store, campaign id, the batch's ledger
message ids, delivery backend, fault drill) and loads what it needs in whichever process runs it
(`lojal.runner.worker_night`), so batches run on a Dask cluster as well as here: `runner:` in
config/schedule.yaml or `lojal run --dask-local N` (docs/operations.md, "Running on Dask"). No task
caches (hashing large frames as cache keys costs more than the work).

No `from __future__ import annotations` here: Prefect builds the parameter schema from the flow's
annotations in the process that serves a deployment, where postponed (string) annotations failed
every run with pydantic's forward-reference error.
"""

import uuid
from collections import deque
from collections.abc import Iterator
from datetime import date

from prefect import flow, get_run_logger, task
from prefect.artifacts import (create_markdown_artifact, create_progress_artifact, create_table_artifact,
                               update_progress_artifact)
from prefect.cache_policies import NONE as NO_CACHE
from prefect.futures import as_completed
from prefect.runtime import flow_run as current_flow_run
from prefect.states import Failed
from prefect.utilities.annotations import quote

from lojal import ledger, pipeline, plans, runlog, schedule
from lojal.delivery.base import DeliveryBackend
from lojal.delivery.reconcile import Policy, reconcile
from lojal.errors import LojalError
from lojal.paths import Paths
from lojal.progress import observer
from lojal.runlock import RunLock
from lojal.runner import Placement, load_batch, placement, store_fingerprint, worker_night, workers_preparing
from lojal.store import connect
from lojal.store.db import require_schema
from lojal.report import campaign_markdown, night_markdown, write_run_report
from lojal.tracking import night as tracking


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
def apply_suppressions(project: pipeline.Project):
    """Webhook events -> suppressions before the night's data is read: skipped tonight, with the reason."""
    applied = tracking.apply_suppressions(project.paths)
    get_run_logger().info(tracking.suppressions_line(applied))
    return applied


@task(cache_policy=NO_CACHE)
def decide_campaigns(night: pipeline.Night, only: str | None = None) -> pipeline.Decided:
    decided = pipeline.decide_campaigns(night, only)
    _funnel_artifact(plans.funnel_records(night.decisions), night.run_date)
    return decided


@task(cache_policy=NO_CACHE, task_run_name="record_campaign-{campaign_id}")
def record_campaign(night: pipeline.Night, decided: pipeline.Decided, campaign_id: str,
                    refresh: bool = True) -> pipeline.CampaignPlan:
    return pipeline.record_campaign(night, decided, night.project.config.campaign(campaign_id), refresh)


def _recorded(night: pipeline.Night, decided: pipeline.Decided, where: Placement) -> Iterator[pipeline.CampaignPlan]:
    """Each campaign's plan once recorded, added to night.plans (where its subflow finds it). When
    Dask workers deliver and the store is PostgreSQL, the next campaign is recorded in a thread of
    this flow while this one is delivered (a run stopped half-way leaves the campaigns after that
    one unrecorded: its re-run decides them again). Otherwise every campaign is recorded before the
    first is delivered: SQLite has one writer at a time, and batches in this process would share
    its interpreter with the recording (measured: no faster; docs/benchmarks.md)."""
    campaigns, following = decided.campaigns, None
    if where.dask_address is None or night.engine.dialect.name != "postgresql":
        night.plans.extend(record_campaign(quote(night), quote(decided), c.id, refresh=c is campaigns[-1])
                           for c in campaigns)  # the ledger's statistics refreshed once, after the last
        yield from list(night.plans)
        return
    for number, campaign_ in enumerate(campaigns):
        plan = (following.result() if following is not None
                else record_campaign(quote(night), quote(decided), campaign_.id))
        following = None
        if number + 1 < len(campaigns):
            following = record_campaign.submit(quote(night), quote(decided), campaigns[number + 1].id)
        night.plans.append(plan)
        yield plan


def _funnel_artifact(funnel: list[dict], run_date: date) -> None:
    """The decision funnel per campaign (considered, selected, held out, each reason) as a table."""
    if not funnel:
        return
    create_table_artifact(funnel, key="nightly-funnel",
                          description=f"Who was selected, held out or excluded and why, per campaign, on {run_date}")


def _retry_unless_ours(task, task_run, state) -> bool:
    """Retry a batch after an unexpected error (a dropped database connection, a lost worker): the
    ledger claim makes it safe (a retry sends only rows still planned or failed). Lojal's own errors
    (a refused key, a drill's fault) are decisions, not accidents: never retried."""
    try:
        state.result()
    except LojalError:
        return False
    except Exception:  # noqa: BLE001
        return True
    return False


def render_and_send(project_dir: str, run_date: date, store: str, run_token: str, campaign_id: str, number: int,
                    message_ids: list[str], delivery: str | None = None, fail_after: int | None = None,
                    tally: tuple[int, int] | None = None) -> tuple[int, pipeline.BatchOutcome, dict[str, str]]:
    """Render and send one batch wherever this task runs. Its error-rate pause starts from `tally`,
    the campaign's (attempted, not sent) messages tonight when the batch was submitted (the ledger's
    count when not given)."""
    night = worker_night.night_for(project_dir, run_date, store, run_token)
    campaign_, batch = load_batch(night, campaign_id, message_ids)
    if pipeline.needs_whole_night(night, batch):  # rows planned before the customer's context was recorded
        night = worker_night.night_for(project_dir, run_date, store, run_token, whole=True)
    settings = night.project.config.sender.delivery
    tally = pipeline.Tally(*(tally or ledger.night_tally(night.engine, campaign_id, run_date)))
    tally.paused = pipeline.pause_reason(tally, settings)
    if tally.paused or batch.empty:
        return 0, pipeline.BatchOutcome(paused=tally.paused), {}
    backend = worker_night.backend(night, delivery, fail_after)
    messages, render_failures = pipeline.build_messages(night, campaign_, batch)
    ledger.fail_unbuilt(night.engine, render_failures, settings.max_attempts)
    outcome = pipeline.deliver(night.engine, backend, messages, run_date, settings, tally)
    outcome.failed = _naming_customers(batch, outcome.failed)
    return len(messages), outcome, _naming_customers(batch, render_failures)


# Importable under its own name, so Dask pickles it by reference (never by value with this module's
# globals, such as the process's prepared night). Untagged on purpose: Prefect checks tag concurrency
# limits for every tagged task run, which made every batch of a night wait for the Prefect server;
# the campaign subflow carries the tags instead, and `runner.batches_in_flight` is how many batches
# run at once.
send_batch = task(render_and_send, name="send-batch", cache_policy=NO_CACHE, task_run_name="{campaign_id}-batch-{number}",
                  retries=2, retry_delay_seconds=5, retry_condition_fn=_retry_unless_ours)


def _naming_customers(batch, failures: dict[str, str]) -> dict[str, str]:
    """Errors as operators read them (artifact, report, `lojal runs show`): 'customer <id>: <error>'."""
    customers = dict(zip(batch["message_id"], batch["customer_id"]))
    named = {m: f"customer {int(customers[m])}: " for m in failures}
    return {m: error if error.startswith(named[m]) else named[m] + error for m, error in failures.items()}


def run_campaign(campaign_id: str, run_date: date, project_dir: str, store: str, run_token: str,
                 delivery: str | None = None, fail_after: int | None = None, in_flight: int = 1) -> dict:
    """One campaign's batches, `in_flight` submitted at a time to the flow's task runner (this
    process by default, a Dask cluster when configured); stops submitting when the campaign pauses
    or a batch fails, and lets the batches already running finish."""
    night = worker_night.night_for(project_dir, run_date, store, run_token)
    plan = next(p for p in night.plans if p.campaign.id == campaign_id)
    summary = pipeline.summary_for(plan)
    batches = pipeline.batches(plan.pending, night.project.config.sender.delivery.batch_size, in_flight)
    observer().campaign_started(campaign_id, len(plan.pending))
    _tag_flow_run(campaign_tags(campaign_id))
    fixed = dict(project_dir=project_dir, run_date=run_date, store=store, run_token=run_token,
                 campaign_id=campaign_id, delivery=delivery, fail_after=fail_after)
    tally = list(ledger.night_tally(night.engine, campaign_id, run_date))  # earlier runs of this night count
    _run_batches(batches, fixed, in_flight, summary, _DeliveryProgress(campaign_id, len(plan.pending)), tally)
    if summary.paused:
        get_run_logger().warning("%s %s", campaign_id, summary.paused)
    create_markdown_artifact(campaign_markdown(summary, night.run_date),
                             key=f"campaign-{campaign_id.replace('_', '-')}",
                             description=f"Funnel of campaign {campaign_id} on {night.run_date}")
    get_run_logger().info("%s: %d selected, %d delivered, %d failed", campaign_id,
                          summary.selected, summary.delivered, summary.failed)
    return summary.as_dict()


def campaign_tags(campaign_id: str) -> list[str]:
    """The tags of a campaign's subflow run (its batches' parent in the UI)."""
    return ["lojal", "delivery", f"campaign:{campaign_id}"]


def _run_batches(batches: list, fixed: dict, in_flight: int, summary: pipeline.CampaignSummary,
                 progress: "_DeliveryProgress", tally: list[int]) -> None:
    """Keep `in_flight` batch tasks submitted; stop submitting once the campaign pauses or a batch
    fails, let the running ones finish, then raise the first failure. `tally`: the campaign's
    [attempted, not sent] messages tonight, handed to each batch and grown as batches finish (one
    ledger count per campaign, not one per batch: that count grew with the night)."""
    queue, running, error = deque(enumerate(batches, 1)), {}, None
    while queue or running:
        while queue and len(running) < in_flight and not (summary.paused or error):
            number, batch = queue.popleft()
            running[send_batch.submit(number=number, message_ids=batch["message_id"].tolist(), tally=tuple(tally),
                                      **fixed)] = len(batch)
        if not running:
            break
        done = next(iter(as_completed(list(running))))
        size = running.pop(done)
        try:
            rendered, outcome, failures = done.result()
            pipeline.record_batch(summary, rendered, outcome, failures)
            tally[0] += outcome.states[ledger.SENT] + len(outcome.failed)
            tally[1] += len(outcome.failed)
        except BaseException as exc:  # noqa: BLE001 - the batches still running finish first
            error = error or exc
        progress.advanced(size)
    if error is not None:
        raise error


# Importable under its own name too: Dask workers receive the running flow with each task's context,
# and must find this function by reference, not pickle it by value with this module's globals.
campaign = flow(run_campaign, name="campaign", flow_run_name="{campaign_id}")


class _DeliveryProgress:
    """The campaign's delivery progress: the CLI's bar and a Prefect progress artifact."""

    def __init__(self, campaign_id: str, total: int):
        self.campaign_id, self.total, self.done = campaign_id, total, 0
        self.artifact = create_progress_artifact(0.0, key=f"delivery-{campaign_id.replace('_', '-')}",
                                                 description=f"Batches of {campaign_id} handed over")

    def advanced(self, count: int) -> None:
        self.done += count
        observer().advanced(self.campaign_id, count)
        update_progress_artifact(self.artifact, 100.0 * self.done / max(1, self.total))


def _night_name() -> str:
    """`nightly-<date>`, known before the run starts (Prefect calls this to name the flow run)."""
    return f"nightly-{schedule.flow_run_night()}"


@flow(name="nightly", flow_run_name=_night_name)
def nightly(run_date: date | None = None, project_dir: str | None = None,
            fail_after: int | None = None, delivery: str | None = None, dask_local: int | None = None,
            dry_run: bool = False, campaign: str | None = None) -> dict:
    """Run tonight's campaigns. `delivery` (outbox, sendgrid) overrides config/sender.yaml for this
    run; `fail_after` injects a delivery fault after N messages per process (drills); `dask_local`
    runs the batches on a local Dask cluster of that many worker processes (else where
    config/schedule.yaml's `runner:` says, by default in this process). `dry_run`: decide only,
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
    options = _Options(delivery, fail_after, dask_local, campaign)
    try:
        project = load_project(project_dir)
        _tag_flow_run(schedule.run_tags(project.config.brand.name, project.config.schedule.environment))
        if campaign is not None:
            plans.check_campaign(project.config, campaign)
        result = _locked_night(project, run_date, options, summaries, run.run_id)
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


class _Options:
    """How this run delivers: backend override, fault drill, local Dask cluster size, one campaign only."""

    def __init__(self, delivery: str | None, fail_after: int | None, dask_local: int | None, only: str | None = None):
        self.delivery, self.fail_after, self.dask_local, self.only = delivery, fail_after, dask_local, only


def _locked_night(project: pipeline.Project, run_date: date, options: _Options, summaries: list[dict],
                  run_id: int | None) -> dict:
    engine = connect(project.paths.database_url)
    require_schema(engine)
    lock = RunLock(engine, run_date)
    try:
        runlog.mark_interrupted(engine, keep=run_id)
        return _deliver_night(project, run_date, options, summaries)
    finally:
        lock.release()
        engine.dispose()


def _deliver_night(project: pipeline.Project, run_date: date, options: _Options, summaries: list[dict]) -> dict:
    """Plan here, once; then each campaign's batches where the runner says. The night planned here is
    this process's `worker_night`, so batches run in this process prepare nothing again; Dask workers
    prepare theirs while this process prepares and plans (lojal.runner.workers_preparing), from the
    store as it is once tonight's suppressions are applied."""
    run_token = str(current_flow_run.id or uuid.uuid4())
    try:
        with placement(project.config.schedule.runner, options.dask_local) as where:
            get_run_logger().info("batches run in %s", where.where)
            suppressed = apply_suppressions(quote(project))
            night, backend, reconciled = _plan_and_deliver(project, run_date, options, where, run_token, summaries)
    finally:
        worker_night.release()
    outbox = project.paths.outbox_dir(run_date)
    report = write_run_report(project.paths, run_date, summaries)
    page = tracking.publish_report(project.paths, project.config, run_date, suppressed)
    return {"run_date": run_date.isoformat(), "delivery": backend.name, "outbox": str(outbox),
            "report": str(report), "reconciled": reconciled, "campaigns": summaries,
            "suppressions": suppressed.as_dict(), "tracking_report": str(page) if page else None,
            "funnel": plans.funnel_records(night.decisions)}


def _plan_and_deliver(project: pipeline.Project, run_date: date, options: _Options, where: Placement,
                      run_token: str, summaries: list[dict]) -> tuple[pipeline.Night, DeliveryBackend, dict[str, int]]:
    """(night, backend, reconciled): prepare and decide here while the workers prepare, then record
    and deliver each campaign (the next one recorded while Dask workers deliver this one, on
    PostgreSQL);
    each campaign's summary is appended to `summaries` as it ends."""
    project_dir, store = str(project.paths.project), store_fingerprint(project.paths.database_url)
    with workers_preparing(where, project_dir, run_date, store, run_token) as workers_ready:
        night = prepare_night(quote(project), run_date)
        worker_night.adopt(night, run_token)
        backend = worker_night.backend(night, options.delivery, options.fail_after)  # a bad setting stops us here
        reconciled = reconcile_unsettled(quote(night))
        night.plans = []
        decided = decide_campaigns(quote(night), options.only)
        workers_ready()
        for plan in _recorded(night, decided, where):
            summaries.append(campaign.with_options(task_runner=where.task_runner)(
                plan.campaign.id, run_date, project_dir, store, run_token, options.delivery, options.fail_after,
                where.in_flight))
    return night, backend, reconciled


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
