"""Which night a run is for, and how Prefect names and tags it: plain functions, no Prefect here.

A scheduled run's night is the date of its *scheduled* time in the shop's zone, so a run scheduled
for 02:00 on the 24th that is retried (or starts late) after midnight still runs the 24th.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timezone
from zoneinfo import ZoneInfo

from lojal.paths import Paths


def night_for(scheduled: datetime, zone: str) -> date:
    """The shop's calendar date at `scheduled` (an aware time; naive means UTC)."""
    if scheduled.tzinfo is None:
        scheduled = scheduled.replace(tzinfo=timezone.utc)
    return scheduled.astimezone(ZoneInfo(zone)).date()


def as_date(value) -> date | None:
    """A run date parameter as Prefect hands it over: None, a date, or 'YYYY-MM-DD'."""
    if value is None or isinstance(value, date) and not isinstance(value, datetime):
        return value
    if isinstance(value, datetime):
        return value.date()
    return date.fromisoformat(str(value))


def shop_zone(paths: Paths) -> str:
    """brand.yaml's time zone, read on its own (so a run is named even when another file is broken);
    UTC when brand.yaml itself is unreadable (the run then fails on it, with every problem listed)."""
    from lojal.config import Brand
    from lojal.errors import LojalError
    from lojal.yamlfile import read_yaml, validate_document

    path = paths.config_dir / "brand.yaml"
    try:
        return validate_document(read_yaml(path, paths.relative(path)), Brand).timezone
    except (LojalError, OSError):
        return "UTC"


def night_of(run_date, project_dir: str | None, scheduled: datetime) -> date:
    """The night a run is for: its `run_date` parameter, else its scheduled time in the shop's zone."""
    return as_date(run_date) or night_for(scheduled, shop_zone(Paths.resolve(project_dir)))


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "shop"


def run_tags(shop_name: str, environment: str) -> list[str]:
    """The tags of every Lojal run: which shop, which environment (filters and automations use them)."""
    return ["lojal", f"shop:{slug(shop_name)}", f"env:{environment}"]


def flow_run_night():
    """The night of the Prefect flow run being named (its run_date parameter, else its scheduled time in
    the shop's zone): what `nightly-<date>` and `report-<date>` show before the run starts."""
    from prefect.runtime import flow_run

    parameters = flow_run.parameters
    return night_of(parameters.get("run_date"), parameters.get("project_dir"), flow_run.scheduled_start_time)
