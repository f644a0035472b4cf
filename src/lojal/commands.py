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
        rows = len(shop.customers) + len(shop.products) + len(shop.orders) + len(shop.lines) + len(shop.suppressions)
        task = bar.add_task("writing to the store", total=rows)
        counts = write_sample_shop(connect(paths.database_url), shop, replace=replace,
                                   progress=lambda n: bar.advance(task, n))
    if replace:
        _clear_outbox(paths)
    return counts


def _clear_outbox(paths: Paths) -> None:
    import shutil

    shutil.rmtree(paths.state / "outbox", ignore_errors=True)


def import_data(project: Path | None, kind: str, file: Path, columns: str | None) -> dict[str, int]:
    from lojal.store.importer import import_file
    from lojal.store import connect

    paths = Paths.resolve(project)
    return import_file(connect(paths.database_url), kind, file, columns)


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


def run_nightly(project: Path | None, run_date: date | None, fail_after: int | None, verbose: bool,
                progress: bool, delivery: str | None = None) -> dict:
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    if not verbose:
        # Console only: the Prefect UI still receives every log line.
        os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "WARNING")
        os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_FLOW_RUNS_LEVEL", "WARNING")
        os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_TASK_RUNS_LEVEL", "WARNING")
    from flows.nightly import nightly

    paths = Paths.resolve(project)
    with _bar(progress) as bar:
        ctx = observing(RichObserver(bar)) if progress else nullcontext()
        with ctx:
            return nightly(run_date=run_date, project_dir=str(paths.project), fail_after=fail_after,
                           delivery=delivery)
