"""What the CLI commands do, with progress display; kept apart from option parsing."""

from __future__ import annotations

import os
from contextlib import nullcontext
from datetime import date
from pathlib import Path

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from lojal.config import load_config
from lojal.paths import Paths
from lojal.progress import observing


def _bar(enabled: bool) -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    disable=not enabled, transient=False)


def sample_data(project: Path | None, customers: int, seed: int, until: date | None, replace: bool,
                progress: bool) -> dict[str, int]:
    from lojal.sample import generate_shop
    from lojal.sample.store import write_sample_shop
    from lojal.store import connect, shop_today

    paths = Paths.resolve(project)
    zone = load_config(paths).brand.timezone
    until = until or shop_today(zone)
    with _bar(progress) as bar:
        task = bar.add_task("generating customers and orders", total=customers)
        shop = generate_shop(customers, seed, until, progress=lambda n: bar.advance(task, n), timezone=zone)
        rows = sum(len(frame) for frame in (shop.customers, shop.products, shop.orders, shop.lines, shop.suppressions,
                                            shop.prices, shop.texts) if frame is not None)
        task = bar.add_task("writing to the store", total=rows)
        counts = write_sample_shop(connect(paths.database_url), shop, replace=replace,
                                   progress=lambda n: bar.advance(task, n))
    if replace:
        _clear_outbox(paths)
    return counts


def _clear_outbox(paths: Paths) -> None:
    import shutil

    shutil.rmtree(paths.state / "outbox", ignore_errors=True)


def import_data(project: Path | None, kind: str, file: Path, columns: str | None,
                progress: bool | None = None) -> dict[str, int]:
    from lojal.store.importer import import_file
    from lojal.store import connect

    paths = Paths.resolve(project)
    if kind in ("prices", "translations"):
        from lojal.config import load_config_parts
        from lojal.store.market_import import import_market_file

        markets = load_config_parts(paths)[0].get("markets")  # None: no config/markets.yaml, any market id
        return import_market_file(connect(paths.database_url), kind, file, columns, markets)
    if progress is None:
        from lojal.cli import show_progress

        progress = show_progress()
    engine = connect(paths.database_url)
    with _bar(progress) as bar:
        return import_file(engine, kind, file, columns, progress=_import_progress(bar, file) if progress else None)


def _import_progress(bar: Progress, file: Path):
    """`import_file`'s progress callback drawing one bar per stage (validating, writing)."""
    rows = _count_lines(file)
    tasks: dict[str, object] = {}

    def advance(stage: str, count: int) -> None:
        if stage not in tasks:
            tasks[stage] = bar.add_task(f"{stage} {file.name}", total=rows)
        bar.advance(tasks[stage], count)

    return advance


def _count_lines(file: Path) -> int | None:
    """Data rows of a CSV (lines less the header) for the bar's total; None for Parquet."""
    if file.suffix.lower() != ".csv" or not file.exists():
        return None
    lines = 0
    with file.open("rb") as handle:
        while block := handle.read(1 << 24):
            lines += block.count(b"\n")
    return max(lines - 1, 0)


class RichObserver:
    def __init__(self, bar: Progress):
        self.bar = bar
        self.tasks: dict[str, int] = {}
        self.stage_task = bar.add_task("starting", total=None)

    def stage(self, name: str) -> None:
        self.bar.update(self.stage_task, description=name)

    def campaign_started(self, campaign_id: str, total: int) -> None:
        self.bar.update(self.stage_task, description="delivering", visible=False)
        self.tasks[campaign_id] = self.bar.add_task(campaign_id, total=total)

    def advanced(self, campaign_id: str, count: int) -> None:
        self.bar.advance(self.tasks[campaign_id], count)


def quiet_prefect_console(verbose: bool) -> None:
    """Prefect's console lines only with --verbose (the UI still receives every log line); the
    temporary server gets time to start on a busy machine."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", str(EPHEMERAL_STARTUP_SECONDS))
    if not verbose:
        # Errors too: `lojal run` prints each one as a clean line itself.
        os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "CRITICAL")
        os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_FLOW_RUNS_LEVEL", "CRITICAL")
        os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_TASK_RUNS_LEVEL", "CRITICAL")


EPHEMERAL_STARTUP_SECONDS = 90


def ensure_prefect_api(attempts: int = 2) -> str | None:
    """Without PREFECT_API_URL, start Prefect's temporary local server now, with a long timeout and
    one retry on a fresh port, and return its API address; a failure is one clear LojalError, not a
    traceback."""
    from prefect.settings import PREFECT_API_URL, PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS

    if PREFECT_API_URL.value():
        return None
    from prefect.server.api.server import SubprocessASGIServer

    from lojal.errors import LojalError

    timeout = PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS.value()
    server = SubprocessASGIServer()
    for attempt in range(1, attempts + 1):
        try:
            server.start(timeout=timeout)
            return server.api_url
        except RuntimeError as exc:
            process, server.port = server.server_process, None
            if process is not None and process.poll() is None:
                process.kill()
            if attempt == attempts:
                exited = " (it exited)" if "exited with code" in str(exc) else ""
                raise LojalError(
                    f"Prefect's temporary server did not answer within {timeout} s, tried {attempts} times{exited}. "
                    "On a busy machine raise PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS, or start a server "
                    "once with `prefect server start` and set PREFECT_API_URL=http://127.0.0.1:4200/api "
                    "(docs/operations.md)") from None


def run_nightly(project: Path | None, run_date: date | None, fail_after: int | None, verbose: bool,
                progress: bool, delivery: str | None = None, dask_local: int | None = None,
                dry_run: bool = False, campaign: str | None = None):
    """The nightly flow in this process; returns its final Prefect state (Completed, or Failed with
    the night's result when messages failed, or Failed with the exception that stopped it)."""
    quiet_prefect_console(verbose)
    api_url = ensure_prefect_api()
    from lojal.flows.nightly import nightly
    from prefect.settings import PREFECT_API_URL, temporary_settings

    paths = Paths.resolve(project)
    # The temporary server's address as a setting, so Dask workers report their task runs to it too.
    settings = temporary_settings({PREFECT_API_URL: api_url}) if api_url else nullcontext()
    with _bar(progress) as bar, settings:
        ctx = observing(RichObserver(bar)) if progress else nullcontext()
        with ctx:
            return nightly(run_date=run_date, project_dir=str(paths.project), fail_after=fail_after,
                           delivery=delivery, dask_local=dask_local, dry_run=dry_run, campaign=campaign,
                           return_state=True)


def deployments(project: Path | None) -> list:
    """The nightly run and the morning report as Prefect deployments, scheduled per
    config/schedule.yaml (crons in its time zone, default the shop's) and tagged shop/env."""
    from prefect.schedules import Cron
    from prefect.types.entrypoint import EntrypointType

    from lojal.flows.nightly import nightly
    from lojal.flows.report import report
    from lojal.schedule import run_tags

    paths = Paths.resolve(project)
    config = load_config(paths)
    plan = config.schedule
    zone = plan.timezone or config.brand.timezone
    tags = run_tags(config.brand.name, plan.environment)
    parameters = {"project_dir": str(paths.project)}
    common = {"parameters": parameters, "tags": tags, "entrypoint_type": EntrypointType.MODULE_PATH}
    return [
        nightly.to_deployment(name="nightly", schedule=Cron(plan.nightly, timezone=zone),
                              description="Tonight's campaigns (Lojal)", **common),
        report.to_deployment(name="morning-report", schedule=Cron(plan.report, timezone=zone),
                             description="Did last night do everything? (Lojal)", **common),
    ]


def serve(project: Path | None, limit: int | None) -> None:
    """Serve the deployments from this process until stopped (Ctrl-C): Prefect starts each
    scheduled run in a subprocess. Needs a Prefect server (PREFECT_API_URL)."""
    from prefect import serve as prefect_serve
    from prefect.settings import PREFECT_API_URL

    from lojal.errors import LojalError

    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    if not PREFECT_API_URL.value():
        raise LojalError("`lojal serve` needs a Prefect server to schedule against: start one with "
                         "`prefect server start` and set PREFECT_API_URL=http://127.0.0.1:4200/api (docs/operations.md)")
    prefect_serve(*deployments(project), limit=limit)
