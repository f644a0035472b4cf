"""A cheap night of N recipients for the exactly-once proofs: a synthetic store (every customer
with consent and one order 30 days ago), one campaign to everyone, the shipped win_back template,
the SendGrid backend pointed at the local SendGrid, and the Event Webhook into the same store."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from lojal.sample import generate_shop
from lojal.sample.shop import SampleShop

REPO = Path(__file__).resolve().parents[2]
LOJAL = str(Path(sys.executable).with_name("lojal"))
API_KEY = "SG.lojal-test-key.0123456789abcdef"


def synthetic_shop(n: int, night: date) -> SampleShop:
    base = generate_shop(20, seed=1, until=night)
    ids = np.arange(1, n + 1, dtype="int64")
    created = pd.Timestamp(night) - pd.Timedelta(days=400)
    customers = pd.DataFrame({
        "customer_id": ids, "email": [f"kunde{i}@example.no" for i in ids], "first_name": "Kari",
        "locale": "nb", "country": "NO", "time_zone": "Europe/Oslo", "birthday": None, "created_at": created,
        "consent_email": True, "consent_at": created, "consent_source": "checkout"})
    product = base.products.iloc[0]
    orders = pd.DataFrame({"order_id": ids, "customer_id": ids,
                           "placed_at": pd.Timestamp(night) - pd.Timedelta(days=30), "currency": "NOK"})
    lines = pd.DataFrame({"order_id": ids, "line_no": 1, "sku": product["sku"], "quantity": 1,
                          "unit_price": float(product["price"])})
    return SampleShop(customers, base.products, orders, lines, base.suppressions.iloc[0:0])


def one_campaign_project(root: Path, **delivery) -> Path:
    """The shipped project with one campaign to every customer who ordered, sent by SendGrid."""
    for folder in ("config", "segments", "templates"):
        shutil.copytree(REPO / folder, root / folder)
    (root / "segments" / "everyone.yaml").write_text(
        "name: everyone\ndescription: Everyone who ever ordered.\nwhere:\n  order_count: {gte: 1}\n")
    (root / "config" / "campaigns.yaml").write_text(yaml.safe_dump({
        "max_emails_per_customer_per_run": 1,
        "campaigns": [{"id": "hello", "name": "Hello", "segment": "everyone", "template": "win_back",
                       "priority": 10, "occasion": "once", "holdout": 0}]}))  # every customer mailed
    sender = root / "config" / "sender.yaml"
    settings = yaml.safe_load(sender.read_text())
    settings["delivery"].update({"backend": "sendgrid", "batch_size": 1000, "retry_pause_seconds": 0.2,
                                 "unknown_grace_minutes": 0, "max_attempts": 10, "pause_error_rate": 0.6,
                                 **delivery})
    settings["delivery"]["sendgrid"] = {**settings["delivery"].get("sendgrid", {}), "concurrency": 16,
                                        "max_rate_wait_seconds": 30, "timeout_seconds": 20}
    sender.write_text(yaml.safe_dump(settings))
    return root


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Served:
    """An ASGI app on uvicorn in a thread, on `port`, for the length of a `with` block."""

    def __init__(self, asgi_app, port: int):
        import uvicorn

        self.port = port
        self.server = uvicorn.Server(uvicorn.Config(asgi_app, host="127.0.0.1", port=port, log_level="warning",
                                                    access_log=False, lifespan="on"))

    def __enter__(self):
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.05)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(10)


class Webhook(Served):
    """The Event Webhook receiver over `engine`, verifying with `public_key`."""

    def __init__(self, engine, public_key: str):
        from lojal.sendgrid.app import WebhookApp, verifier_for

        super().__init__(WebhookApp(engine, verifier_for(public_key)), free_port())
        self.url = f"http://127.0.0.1:{self.port}/sendgrid/events"


def run_env(database_url: str, sendgrid_url: str) -> dict:
    from prefect.settings import PREFECT_API_URL

    return dict(os.environ, LOJAL_DATABASE_URL=database_url, PREFECT_API_URL=PREFECT_API_URL.value(),
                SENDGRID_API_KEY=API_KEY, LOJAL_SENDGRID_URL=sendgrid_url, COLUMNS="400")


def start_run(project: Path, night: date, env: dict) -> subprocess.Popen:
    return subprocess.Popen([LOJAL, "run", "--project", str(project), "--date", night.isoformat(),
                             "--delivery", "sendgrid"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
