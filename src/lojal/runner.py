"""Where the render-and-send stage runs, and what a worker process loads for it.

Batch tasks take small parameters (project dir, run date, campaign id, the batch's ledger message
ids, delivery backend name, fault drill) and load the rest here, in whichever process runs them: the
run's own (the default) or a Dask worker (`runner.dask_address` in config/schedule.yaml, or
`lojal run --dask-local N`).

`WorkerNight` is the one per-process cache: the prepared night and the delivery backends, for one
key (project dir, store URL, run date, and the run's token, so that a re-run of a night never reuses
an earlier run's data). It lives as long as the process and holds one night: a task asking for
another key drops the previous one (engine disposed, backends finished). In the run's own process
the flow hands it the night it planned with (the whole shop in memory), so the default runner
prepares nothing twice. A worker prepares a partial night (`pipeline.prepare_rendering_night`: the
catalogue, compiled templates, the secret) and each batch reads its own customers and last orders
by key; only a batch with rows planned before Lojal recorded the customer's context with each
message makes it read the whole shop once (`pipeline.needs_whole_night`).
"""

from __future__ import annotations

import hashlib
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from typing import Callable, Iterator

import pandas as pd

from lojal import ledger, pipeline
from lojal.config import Campaign, Runner
from lojal.delivery import backend_for
from lojal.delivery.base import DeliveryBackend
from lojal.delivery.faults import FailAfter
from lojal.errors import LojalError
from lojal.paths import Paths

Key = tuple[str, str, date, str]


def store_fingerprint(database_url: str) -> str:
    """Names a store without showing its URL (which may hold a password) in task parameters."""
    return hashlib.sha256(database_url.encode()).hexdigest()[:16]


@dataclass
class WorkerNight:
    """This process's prepared night and delivery backends (see the module's docstring)."""
    key: Key | None = None
    night: pipeline.Night | None = None
    backends: dict[tuple[str | None, int | None], DeliveryBackend] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def adopt(self, night: pipeline.Night, run_token: str) -> None:
        """The flow's own night (planned in this process): tasks here reuse it."""
        paths = night.project.paths
        with self.lock:
            self._switch(_key(str(paths.project), paths.database_url, night.run_date, run_token))
            self.night = night

    def night_for(self, project_dir: str, run_date: date, store: str, run_token: str,
                  whole: bool = False) -> pipeline.Night:
        """This process's night for the run: partial unless `whole` (or already whole)."""
        paths = Paths.resolve(project_dir)
        if store_fingerprint(paths.database_url) != store:
            raise LojalError(f"this worker's store is not the run's: set LOJAL_DATABASE_URL (and LOJAL_HOME) on the "
                             f"Dask workers as for the run, and make {project_dir} the same project there "
                             "(docs/operations.md, \"Running on Dask\")")
        with self.lock:
            self._switch(_key(project_dir, paths.database_url, run_date, run_token))
            if self.night is None or (whole and self.night.partial):
                if self.night is not None:
                    self.night.engine.dispose()
                self.night = prepare_worker_night(paths, run_date, whole)
            return self.night

    def backend(self, night: pipeline.Night, name: str | None, fail_after: int | None) -> DeliveryBackend:
        """This process's backend for the night (a drill's FailAfter counts what this process sent)."""
        with self.lock:
            if (name, fail_after) not in self.backends:
                backend = backend_for(night.project.config, night.project.paths, night.run_date, name)
                self.backends[name, fail_after] = FailAfter(backend, fail_after) if fail_after is not None else backend
            return self.backends[name, fail_after]

    def release(self) -> None:
        """Finish the backends (the outbox writes its index) and dispose the engine."""
        with self.lock:
            self._switch(None)

    def _switch(self, key: Key | None) -> None:
        if key == self.key:
            return
        for backend in self.backends.values():
            backend.finish()
        if self.night is not None:
            self.night.engine.dispose()
        self.key, self.night, self.backends = key, None, {}


def _key(project_dir: str, database_url: str, run_date: date, run_token: str) -> Key:
    return (str(Paths.resolve(project_dir).project), database_url, run_date, run_token)


worker_night = WorkerNight()


def prepare_worker_night(paths: Paths, run_date: date, whole: bool = False) -> pipeline.Night:
    """What build_messages needs, prepared in a worker from the store. Each ledger row carries what
    its message is made of (chosen items, variant, send time, offer, the customer's features), so
    no model is fitted, no segment evaluated and no recommender fitted here; partial (the catalogue;
    batches read their customers) unless `whole`: the shop's data and the features a customer's
    context reads (`features.rendering_features`), for rows planned before Lojal recorded them."""
    project = pipeline.load_project(paths)
    if whole:
        return pipeline.prepare_night(project, run_date, for_rendering=True)
    return pipeline.prepare_rendering_night(project, run_date)


def load_batch(night: pipeline.Night, campaign_id: str, message_ids: list[str]) -> tuple[Campaign, pd.DataFrame]:
    """The campaign and the batch's ledger rows still sendable (pipeline.PENDING_COLUMNS: what each
    message is made of, chosen items included, `made_from` read once into a dict), in the order
    given: a retried batch skips what its first try already settled."""
    rows = ledger.sendable_rows(night.engine, message_ids)
    order = {m: i for i, m in enumerate(message_ids)}
    columns = list(pipeline.PENDING_COLUMNS)
    batch = (rows[columns].assign(_order=rows["message_id"].map(order)).sort_values("_order")
             .drop(columns="_order").reset_index(drop=True)) if len(rows) else pd.DataFrame(columns=columns)
    batch["made_from"] = pd.Series([pipeline.made_from_record(v) for v in batch["made_from"]], index=batch.index,
                                   dtype=object)
    return night.project.config.campaign(campaign_id), batch


@dataclass(frozen=True)
class Placement:
    """Where batches run: a Prefect task runner, how many batches to keep submitted at once, and the
    Dask scheduler's address when they run on Dask."""
    task_runner: object
    in_flight: int
    where: str
    dask_address: str | None = None


@contextmanager
def workers_preparing(where: Placement, project_dir: str, run_date: date, store: str,
                      run_token: str) -> Iterator[Callable[[], None]]:
    """On Dask, every worker starts preparing the night at once (`WorkerNight.night_for`, as its first
    batch would), so that it does so while this process prepares and plans, not after; yields
    `ready()`, which waits for them and raises the first worker's error (its store is not the run's,
    say) before any batch is submitted. In this process: nothing to do."""
    if where.dask_address is None:
        yield lambda: None
        return
    with _client(where.dask_address) as client:
        # one per worker; allowed elsewhere, so a worker that leaves meanwhile never keeps ready() waiting
        futures = [client.submit(prepare_here, project_dir, run_date, store, run_token, workers=[worker],
                                 allow_other_workers=True, pure=False, key=f"lojal-prepare-{run_token}-{i}")
                   for i, worker in enumerate(client.nthreads())]

        def ready() -> None:
            client.gather(futures)

        yield ready


def prepare_here(project_dir: str, run_date: date, store: str, run_token: str) -> None:
    """Prepare this process's night for the run (a Dask worker, before its first batch)."""
    worker_night.night_for(project_dir, run_date, store, run_token)


@contextmanager
def placement(runner: Runner, dask_local: int | None) -> Iterator[Placement]:
    """In this process one batch after another (the default; `runner.batches_in_flight` threads when
    set, so one batch renders while another waits for the database or SendGrid); on a local Dask cluster of
    `dask_local` worker processes started for this run; or on the scheduler at `runner.dask_address`."""
    if dask_local:
        with _local_cluster(dask_local) as cluster:
            yield _dask(cluster.scheduler_address, runner.batches_in_flight or 2 * dask_local,
                        f"a local Dask cluster of {dask_local} worker processes")
        return
    if runner.dask_address:
        yield _dask(runner.dask_address, runner.batches_in_flight or 2 * _cluster_threads(runner.dask_address),
                    f"the Dask scheduler at {runner.dask_address}")
        return
    from prefect.task_runners import ThreadPoolTaskRunner

    threads = runner.batches_in_flight or 1
    yield Placement(ThreadPoolTaskRunner(max_workers=threads), threads,
                    "this process" if threads == 1 else f"this process, {threads} batches at a time")


@contextmanager
def _local_cluster(workers: int):
    """`workers` Dask worker processes of one thread each, without a dashboard, so without Dask's
    statistical profiler either (nobody could see it; it sampled every thread every 10 ms, about 4%
    of a worker's Python time in a night's profile)."""
    import dask
    from distributed import LocalCluster

    with dask.config.set({"distributed.worker.profile.enabled": False}), \
            LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        yield cluster


def _dask(address: str, in_flight: int, where: str) -> Placement:
    from prefect_dask import DaskTaskRunner

    return Placement(DaskTaskRunner(address=address), max(1, in_flight), where, address)


def _cluster_threads(address: str) -> int:
    with _client(address) as client:
        return max(1, sum(client.nthreads().values()))


@contextmanager
def _client(address: str):
    """A Dask client of the scheduler at `address`; one clear error where it does not answer."""
    from distributed import Client

    try:
        client = Client(address, timeout="20s")
    except OSError as exc:
        raise LojalError(f"the Dask scheduler at {address} (runner.dask_address in config/schedule.yaml) did not "
                         f"answer: {exc}; start it with `dask scheduler` and workers with `dask worker {address}`, "
                         "or remove the setting to run in this process") from None
    with client:
        yield client
