"""Unattended: a real Prefect server and a real `lojal serve` process (subprocesses) run the
nightly deployment for a night scheduled in the past (00:30 in Oslo, 23:30 UTC the day before, as a
late start after midnight would be), and the run knows its night, its shop and its environment."""

from __future__ import annotations

import os
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


@pytest.fixture
def prefect_server(tmp_path):
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
    url = Paths.resolve(project).database_url
    write_sample_shop(connect(url), generate_shop(300, seed=4, until=datetime(2026, 11, 24).date()), replace=False)
    env = {**env, "PREFECT_API_URL": api, "LOJAL_HOME": os.environ["LOJAL_HOME"]}
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
        created = client.post(f"/deployments/{deployment['id']}/create_flow_run", json={
            "state": {"type": "SCHEDULED", "state_details": {"scheduled_time": SCHEDULED.isoformat()}}})
        created.raise_for_status()
        run_id = created.json()["id"]
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


def _deployment(client: httpx.Client, flow: str, name: str):
    response = client.get(f"/deployments/name/{flow}/{name}")
    return response.json() if response.status_code == 200 else None


def _final(client: httpx.Client, run_id: str):
    run = client.get(f"/flow_runs/{run_id}").json()
    return run if run["state_type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED") else None
