"""Unattended: a real Prefect server and a real `lojal serve` process, or prefect.yaml deployed to a
process work pool and a real `prefect worker` (all subprocesses), run the nightly deployment for a
night scheduled in the past (00:30 in Oslo, 23:30 UTC the day before, as a late start after midnight
would be); the run knows its night, its shop and its environment."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import httpx
import pytest
import yaml

from lojal.config import Schedule
from lojal.paths import Paths
from lojal.sample import generate_shop
from lojal.sample.store import write_sample_shop
from lojal.store import connect

RUN_DATE = "2026-11-24"
SCHEDULED = datetime(2026, 11, 23, 23, 30, tzinfo=timezone.utc)  # 00:30 on the 24th in Europe/Oslo
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(check, timeout: float, what: str, processes=()):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for process in processes:
            if process.poll() is not None:
                raise AssertionError(f"{process.args[:3]} exited with {process.returncode} while waiting for {what}")
        result = check()
        if result:
            return result
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("prefect-server")
    port = free_port()
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "PREFECT_UI_ENABLED": "false"}
    env.pop("PREFECT_API_URL", None)
    log = open(tmp_path / "server.log", "wb")
    server = subprocess.Popen([str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port),
                               "--no-services"], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    api = f"http://127.0.0.1:{port}/api"

    def healthy():
        try:
            return httpx.get(f"{api}/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_for(healthy, 180, "the Prefect server", [server])
        yield api, env
    finally:
        stop(server)
        log.close()


@pytest.mark.slow
def test_lojal_serve_runs_the_scheduled_night_named_and_tagged(project, prefect_server, tmp_path):
    api, env = prefect_server
    env = _filled(project, env, api)
    log = open(tmp_path / "serve.log", "wb")
    serving = subprocess.Popen([str(BIN / "lojal"), "serve", "--project", str(project)], env=env, stdout=log,
                               stderr=subprocess.STDOUT, start_new_session=True, cwd=tmp_path)
    try:
        client = httpx.Client(base_url=api, timeout=30)
        deployment = wait_for(lambda: _deployment(client, "nightly", "nightly"), 120, "the nightly deployment",
                              [serving])
        schedule = deployment["schedules"][0]["schedule"]
        assert (schedule["cron"], schedule["timezone"]) == ("0 2 * * *", "Europe/Oslo")
        report = wait_for(lambda: _deployment(client, "report", "morning-report"), 60, "the report deployment",
                          [serving])
        assert report["schedules"][0]["schedule"]["cron"] == "0 7 * * *"
        run_id = _schedule_now(client, deployment["id"])
        final = wait_for(lambda: _final(client, run_id), 300, "the nightly flow run", [serving])
    finally:
        stop(serving)
        log.close()
    assert final["state_type"] == "COMPLETED", (final["state"], (tmp_path / "serve.log").read_text()[-3000:])
    assert final["name"] == f"nightly-{RUN_DATE}"
    assert {"shop:nordlys-hjem", "env:production", "lojal"} <= set(final["tags"])

    listed = subprocess.run([str(BIN / "lojal"), "runs", "--json", "--project", str(project)], env=env,
                            capture_output=True, text=True, check=True)
    runs = yaml.safe_load(listed.stdout)
    assert [(r["run_date"], r["status"]) for r in runs] == [(RUN_DATE, "completed")]
    assert runs[0]["delivered"] > 0


def _filled(project: Path, env: dict, api: str) -> dict:
    url = Paths.resolve(project).database_url
    write_sample_shop(connect(url), generate_shop(300, seed=4, until=datetime(2026, 11, 24).date()), replace=False)
    return {**env, "PREFECT_API_URL": api, "LOJAL_HOME": os.environ["LOJAL_HOME"]}


def _schedule_now(client: httpx.Client, deployment_id: str) -> str:
    """Retries 503 as Prefect's own client does: its SQLite answers 503 while `lojal serve` holds a write lock."""
    for attempt in range(5):
        created = client.post(f"/deployments/{deployment_id}/create_flow_run", json={
            "state": {"type": "SCHEDULED", "state_details": {"scheduled_time": SCHEDULED.isoformat()}}})
        if created.status_code != 503:
            break
        time.sleep(2 ** attempt)
    created.raise_for_status()
    return created.json()["id"]


def test_prefect_yaml_schedules_are_config_schedule_yaml():
    """prefect.yaml repeats config/schedule.yaml's crons and zone: they must not drift apart."""
    deployments = {d["name"]: d for d in yaml.safe_load((REPO / "prefect.yaml").read_text())["deployments"]}
    config = Schedule(**yaml.safe_load((REPO / "config" / "schedule.yaml").read_text()))
    for name, cron in (("nightly", config.nightly), ("morning-report", config.report)):
        assert deployments[name]["schedules"] == [{"cron": cron, "timezone": config.timezone, "active": True}]
    assert {d["entrypoint"] for d in deployments.values()} == {"lojal.flows.nightly.nightly", "lojal.flows.report.report"}


@pytest.mark.slow
def test_prefect_yaml_deployed_to_a_work_pool_runs_on_a_worker(project, prefect_server, tmp_path):
    api, env = prefect_server
    env = {**_filled(project, env, api), "PWD": str(project)}  # as a shell in the project sets it
    shutil.copy(REPO / "prefect.yaml", project / "prefect.yaml")
    # no flow files in the shop's project: the entrypoints are modules of the installed lojal package
    prefect = str(BIN / "prefect")
    for command in ([prefect, "work-pool", "create", "lojal", "--type", "process"],
                    [prefect, "--no-prompt", "deploy", "--all"]):
        done = subprocess.run(command, cwd=project, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
    client = httpx.Client(base_url=api, timeout=30)
    deployment = _deployment(client, "nightly", "nightly")
    assert deployment["schedules"][0]["schedule"]["timezone"] == "Europe/Oslo"
    run_id = _schedule_now(client, deployment["id"])
    worker = subprocess.run([prefect, "worker", "start", "--pool", "lojal", "--type", "process", "--run-once"],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=400)
    final = wait_for(lambda: _final(client, run_id), 120, "the flow run on the worker")
    assert final["state_type"] == "COMPLETED", (final["state"], worker.stdout[-3000:], worker.stderr[-3000:])
    assert final["name"] == f"nightly-{RUN_DATE}"
    assert {"shop:nordlys-hjem", "env:production"} <= set(final["tags"])


def _deployment(client: httpx.Client, flow: str, name: str):
    response = client.get(f"/deployments/name/{flow}/{name}")
    return response.json() if response.status_code == 200 else None


def _final(client: httpx.Client, run_id: str):
    run = client.get(f"/flow_runs/{run_id}").json()
    return run if run["state_type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED") else None
