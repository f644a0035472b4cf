"""The render-and-send stage on a local Dask cluster of worker processes (prefect-dask): the same
plan, messages and ledger as the default in-process runner; and on PostgreSQL, workers handed the
same messages at once never both send one (claims lock rows FOR UPDATE SKIP LOCKED)."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pandas as pd
import pytest
import yaml

from lojal import ledger, pipeline
from lojal.config import load_config
from lojal.errors import ProjectError
from lojal.paths import Paths
from lojal.runner import store_fingerprint
from lojal.sample import generate_shop
from lojal.sample.store import write_sample_shop
from lojal.store import connect

RUN_DATE = date(2026, 11, 24)
REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.usefixtures("prefect_harness")
LEDGER_COLUMNS = ["message_id", "campaign_id", "customer_id", "occasion_key", "run_date", "state", "attempts",
                  "attempt_run_date", "accepted_on", "provider_message_id", "error"]


@pytest.fixture(scope="module")
def shop():
    return generate_shop(400, seed=3, until=RUN_DATE)


def _project(root: Path, shop, monkeypatch, database_url: str | None = None, in_flight: int | None = None) -> Path:
    """The shipped project with small batches (so several run at once), its own state and store."""
    import shutil

    for folder in ("config", "segments", "templates"):
        shutil.copytree(REPO / folder, root / folder)
    sender = root / "config" / "sender.yaml"
    settings = yaml.safe_load(sender.read_text())
    settings["delivery"]["batch_size"] = 15
    sender.write_text(yaml.safe_dump(settings))
    if in_flight:
        schedule = root / "config" / "schedule.yaml"
        config = yaml.safe_load(schedule.read_text()) or {}
        config.setdefault("runner", {})["batches_in_flight"] = in_flight
        schedule.write_text(yaml.safe_dump(config))
    monkeypatch.setenv("LOJAL_HOME", str(root / "state"))
    monkeypatch.setenv("LOJAL_SECRET", "one-shop-secret-shared-by-both-runs-0123456789")  # same tokens in both
    if database_url:
        monkeypatch.setenv("LOJAL_DATABASE_URL", database_url)
    else:
        monkeypatch.delenv("LOJAL_DATABASE_URL", raising=False)
    write_sample_shop(connect(Paths.resolve(root).database_url), shop, replace=False)
    return root


def _night(root: Path, **kwargs) -> tuple[dict, pd.DataFrame, dict[str, str]]:
    """Run the night; return its result, its ledger and its outbox (request bodies and HTML by file)."""
    from lojal.flows.nightly import nightly

    result = nightly(run_date=RUN_DATE, project_dir=str(root), **kwargs)
    paths = Paths.resolve(root)
    rows = ledger.states(connect(paths.database_url))[LEDGER_COLUMNS].sort_values("message_id").reset_index(drop=True)
    outbox = paths.outbox_dir(RUN_DATE)
    files = {p.relative_to(outbox).as_posix(): p.read_text() for p in outbox.glob("*/*") if p.suffix in (".json", ".html")}
    return result, rows, files


@pytest.mark.parametrize("other", ["dask", "threads"])
def test_a_night_on_two_dask_workers_or_three_threads_equals_the_default_runner(tmp_path, monkeypatch, shop, other):
    default = _night(_project(tmp_path / "default", shop, monkeypatch))
    if other == "dask":
        parallel = _night(_project(tmp_path / "dask", shop, monkeypatch), dask_local=2)
    else:  # runner.batches_in_flight in the run's own process: batches in threads
        parallel = _night(_project(tmp_path / "threads", shop, monkeypatch, in_flight=3))

    (result_a, rows_a, files_a), (result_b, rows_b, files_b) = default, parallel
    assert [c["selected"] for c in result_b["campaigns"]] == [c["selected"] for c in result_a["campaigns"]]
    assert result_b["campaigns"] == result_a["campaigns"]  # plan, funnel and outcome per campaign
    assert sum(c["delivered"] for c in result_a["campaigns"]) > 30  # several batches of 15 ran at once
    pd.testing.assert_frame_equal(rows_b, rows_a)
    mailed = rows_a[rows_a["state"] != "held_out"]  # holdout groups are recorded, never sent
    assert (mailed["state"] == "sent").all() and (mailed["attempts"] == 1).all()
    assert (rows_a.loc[rows_a["state"] == "held_out", "attempts"] == 0).all()
    assert files_b.keys() == files_a.keys() and len(files_a) == 2 * len(mailed)
    assert files_b == files_a  # the same SendGrid request bodies and HTML, byte for byte
    assert _delivery_progress("last_chance") == [100.0, 100.0]  # each run's progress artifact reached 100 %


def _delivery_progress(campaign_id: str) -> list[float]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.client.schemas.sorting import ArtifactSort

    key = f"delivery-{campaign_id.replace('_', '-')}"
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])),
                                      sort=ArtifactSort.CREATED_DESC, limit=2)  # this test's two runs
    return [float(a.data) for a in found if a.type == "progress"]


@pytest.mark.postgres
def test_dask_workers_handed_the_same_messages_on_postgresql_send_each_once(tmp_path, monkeypatch, shop,
                                                                              postgres_url):
    from prefect import flow
    from prefect_dask import DaskTaskRunner

    from lojal.flows.nightly import send_batch

    root = _project(tmp_path / "pg", shop, monkeypatch, postgres_url)
    paths = Paths.resolve(root)
    night = pipeline.prepare_night(pipeline.load_project(paths), RUN_DATE)
    plans = pipeline.plan_campaigns(night)
    night.engine.dispose()
    work = [(p.campaign.id, p.pending["message_id"].tolist()) for p in plans if len(p.pending)]
    planned = sum(len(ids) for _, ids in work)
    assert planned > 30

    @flow(task_runner=DaskTaskRunner(cluster_kwargs={"n_workers": 2, "threads_per_worker": 2, "processes": True,
                                                     "dashboard_address": None}))
    def overlapping():
        """Every campaign's messages handed to four tasks at once, as overlapping workers would be."""
        futures = [send_batch.submit(str(root), RUN_DATE, store_fingerprint(postgres_url), "overlap", campaign_id,
                                     copy, ids) for campaign_id, ids in work for copy in range(4)]
        return [f.result() for f in futures]

    outcomes = overlapping()
    rows = ledger.states(connect(postgres_url))
    rows = rows[rows["state"] != "held_out"]  # holdout groups are recorded, never handed to a worker
    assert (rows["state"] == "sent").all() and (rows["attempts"] == 1).all(), rows["state"].value_counts()
    assert sum(o.delivered for _, o, _ in outcomes) == planned == len(rows)
    assert sum(o.duplicates for _, o, _ in outcomes) == 0  # no message was handed over by two workers
    log = paths.outbox_dir(RUN_DATE) / "deliveries.jsonl"
    sent = [json.loads(line)["message_id"] for line in log.read_text().splitlines()]
    assert len(sent) == len(set(sent)) == planned


def test_dask_workers_prepare_the_night_before_their_first_batch_and_say_when_they_cannot(tmp_path, monkeypatch, shop):
    """workers_preparing starts every worker's night at once (the flow prepares and plans meanwhile):
    once ready() returns, each worker holds the night for this run's key; a worker that cannot
    prepare it (here: its store is not the run's) makes ready() raise its clear error."""
    from distributed import Client

    from lojal.config import Runner
    from lojal.errors import LojalError
    from lojal.runner import placement, workers_preparing

    root = _project(tmp_path / "warm", shop, monkeypatch)
    paths = Paths.resolve(root)
    store = store_fingerprint(paths.database_url)
    held = lambda: __import__("lojal.runner", fromlist=["worker_night"]).worker_night.key  # noqa: E731 (sent by value)
    with placement(Runner(), 2) as where:
        with workers_preparing(where, str(root), RUN_DATE, store, "run-1") as ready:
            ready()
            with Client(where.dask_address) as client:
                keys = client.run(held)
        assert len(keys) == 2 and set(keys.values()) == {(str(paths.project), paths.database_url, RUN_DATE, "run-1")}
        with pytest.raises(LojalError, match="this worker's store is not the run's"):
            with workers_preparing(where, str(root), RUN_DATE, "0" * 16, "run-2") as ready:
                ready()
    with placement(Runner(), None) as where, workers_preparing(where, str(root), RUN_DATE, store, "run-3") as ready:
        ready()  # in this process: nothing to prepare ahead


def test_a_wrong_dask_address_is_a_config_error_naming_file_and_line(project):
    schedule = project / "config" / "schedule.yaml"
    schedule.write_text(schedule.read_text() + "runner:\n  dask_address: 10.0.0.5\n")
    with pytest.raises(ProjectError) as caught:
        load_config(Paths.resolve(project))
    text = str(caught.value)
    assert "config/schedule.yaml:" in text and "dask_address" in text, text
    schedule.write_text(schedule.read_text().replace("10.0.0.5", "tcp://10.0.0.5:8786"))
    assert load_config(Paths.resolve(project)).schedule.runner.dask_address == "tcp://10.0.0.5:8786"


def test_a_configured_scheduler_address_places_batches_on_that_cluster():
    from distributed import LocalCluster
    from prefect_dask import DaskTaskRunner

    from lojal.config import Runner
    from lojal.runner import placement

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, protocol="tcp", dashboard_address=None) as cluster:
        with placement(Runner(dask_address=cluster.scheduler_address), None) as where:
            # twice the cluster's threads: each worker has its next batch waiting when one ends
            assert isinstance(where.task_runner, DaskTaskRunner) and where.in_flight == 4
            assert where.dask_address == cluster.scheduler_address
        with placement(Runner(dask_address=cluster.scheduler_address, batches_in_flight=5), None) as where:
            assert where.in_flight == 5
    with placement(Runner(), None) as where:
        assert where.in_flight == 1 and where.where == "this process" and where.dask_address is None
    with placement(Runner(batches_in_flight=3), None) as where:  # threads of this process
        assert where.in_flight == 3 and where.where == "this process, 3 batches at a time"



def test_the_local_cluster_runs_no_profiler_nobody_could_see():
    """`--dask-local N` starts no dashboard, so its workers run no statistical profiler either."""
    from distributed import Client

    from lojal.runner import _local_cluster

    with _local_cluster(1) as cluster, Client(cluster) as client:
        callbacks = client.run(lambda dask_worker: sorted(dask_worker.periodic_callbacks))
    [names] = callbacks.values()
    assert "profile" not in names and "profile-cycle" not in names and "heartbeat" in names, names
    with Client(processes=False, n_workers=1, dashboard_address=None) as plain:  # Dask's default, for contrast
        [names] = plain.run(lambda dask_worker: sorted(dask_worker.periodic_callbacks)).values()
    assert "profile" in names

def test_a_scheduler_that_does_not_answer_is_one_clear_error_before_anything_runs(tmp_path):
    import socket

    from lojal.config import Runner
    from lojal.errors import LojalError
    from lojal.runner import placement, workers_preparing

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        address = f"tcp://127.0.0.1:{probe.getsockname()[1]}"
    with pytest.raises(LojalError, match=f"the Dask scheduler at {address} .* did not answer"):
        with placement(Runner(dask_address=address, batches_in_flight=2), None) as where:
            with workers_preparing(where, str(tmp_path), RUN_DATE, "0" * 16, "run-1"):
                pass
