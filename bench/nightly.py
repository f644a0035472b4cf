"""Benchmark: the nightly run's stages on a sample shop, and Prefect batching against the naive
one-task-per-recipient way, measured in the same run.

    .venv/bin/python bench/nightly.py [--customers 20000] [--naive-sample 1000] [--json]

Stages run as plain functions (no Prefect) on a fresh SQLite store in a temp folder. The Prefect
part delivers the same sample of recipients twice inside an ephemeral Prefect flow: once with one
task per batch (what lojal/flows/nightly.py does), once with one task per recipient.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from datetime import date
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
RUN_DATE = date(2026, 11, 24)


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - start


def stage_timings(customers: int) -> tuple[dict, object, list]:
    from lojal import pipeline
    from lojal.delivery import OutboxBackend
    from lojal.paths import Paths
    from lojal.sample import generate_shop
    from lojal.sample.store import write_sample_shop
    from lojal.store import connect

    paths = Paths.resolve(PROJECT)
    shop, t_generate = timed(generate_shop, customers, 7, RUN_DATE)
    _, t_write = timed(write_sample_shop, connect(paths.database_url), shop, replace=True)
    project, t_project = timed(pipeline.load_project, paths)
    night, t_prepare = timed(pipeline.prepare_night, project, RUN_DATE)
    plans, t_plan = timed(pipeline.plan_campaigns, night)
    backend = OutboxBackend(paths.outbox_dir(RUN_DATE), project.config.tracking)
    messages_total, t_build, t_deliver = 0, 0.0, 0.0
    for plan in plans:
        for batch in pipeline.batches(plan.pending, 1000):
            (messages, _failures), dt = timed(pipeline.build_messages, night, plan.campaign, batch)
            t_build += dt
            _, dt = timed(pipeline.deliver, night.engine, backend, messages, RUN_DATE, project.config.sender.delivery)
            t_deliver += dt
            messages_total += len(messages)
    report = {
        "customers": customers, "orders": len(shop.orders), "order_lines": len(shop.lines),
        "messages": messages_total,
        "seconds": {"generate_sample": t_generate, "write_store": t_write, "load_project_and_compile": t_project,
                    "load_data_features_segments_reco_fit": t_prepare, "plan_and_ledger": t_plan,
                    "recommend_and_render": t_build, "deliver_outbox_and_ledger": t_deliver},
        "messages_per_s_build": messages_total / t_build if t_build else None,
    }
    return report, night, plans


def prefect_comparison(night, plans, sample: int) -> dict:
    from prefect import flow, task
    from prefect.cache_policies import NONE as NO_CACHE
    from prefect.utilities.annotations import quote

    from lojal import pipeline
    from lojal.delivery import OutboxBackend

    plan = max(plans, key=lambda p: len(p.pending))
    rows = plan.pending.head(sample).copy()  # ledger rows: what each message is made of

    @task(cache_policy=NO_CACHE)
    def send(batch, backend):
        messages, _ = pipeline.build_messages(night, plan.campaign, batch)
        return len(backend.send_batch(messages))

    @flow
    def batched(out: str) -> int:
        backend = OutboxBackend(Path(out), night.project.config.tracking)
        return sum(send(quote(b), quote(backend)) for b in pipeline.batches(rows, 1000))

    @flow
    def per_recipient(out: str) -> int:
        backend = OutboxBackend(Path(out), night.project.config.tracking)
        return sum(send(quote(rows.iloc[i:i + 1]), quote(backend)) for i in range(len(rows)))

    with tempfile.TemporaryDirectory() as tmp:
        batched(os.path.join(tmp, "warmup"))  # the temporary server starts on the first call
        n_batched, t_batched = timed(batched, os.path.join(tmp, "a"))
        n_naive, t_naive = timed(per_recipient, os.path.join(tmp, "b"))
    return {"recipients": sample, "batched_s": t_batched, "per_recipient_s": t_naive,
            "batched_ms_per_message": 1000 * t_batched / n_batched,
            "per_recipient_ms_per_message": 1000 * t_naive / n_naive,
            "ratio_per_recipient_over_batched": t_naive / t_batched}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=20000)
    parser.add_argument("--naive-sample", type=int, default=1000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        os.environ["LOJAL_HOME"] = home
        os.environ.pop("LOJAL_DATABASE_URL", None)
        os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
        os.environ.setdefault("LOJAL_SECRET", "bench-only-secret-not-for-production")
        os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
        report, night, plans = stage_timings(args.customers)
        report["prefect"] = prefect_comparison(night, plans, args.naive_sample)
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"shop: {report['customers']:,} customers, {report['orders']:,} orders, {report['order_lines']:,} lines; "
          f"{report['messages']:,} messages")
    for name, seconds in report["seconds"].items():
        print(f"  {name:<40} {seconds:8.2f} s")
    print(f"  recommend + render: {report['messages_per_s_build']:,.0f} messages/s")
    p = report["prefect"]
    print(f"Prefect, {p['recipients']} recipients: one task per batch {p['batched_ms_per_message']:.2f} ms/message, "
          f"one task per recipient {p['per_recipient_ms_per_message']:.2f} ms/message "
          f"(naive is {p['ratio_per_recipient_over_batched']:.1f}x slower)")


if __name__ == "__main__":
    main()
