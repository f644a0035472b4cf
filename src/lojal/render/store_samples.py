"""Preview samples from the store: for each enabled campaign and locale, one real customer who is
in the campaign's audience tonight, with the context the nightly run would render for them (their
market's prices and currency, their language's product titles, their last order as paid).

Nothing is written: planning is the pure `assign_campaigns`, and no ledger row is made. An empty or
missing store gives None, and the preview falls back to the built-in samples (lojal.render.samples).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from lojal.config import LOCALES, ProjectConfig
from lojal.errors import LojalError
from lojal.paths import Paths


@dataclass(frozen=True)
class StoreSample:
    key: str          # e.g. "sv-100231" (locale and customer id)
    locale: str
    context: dict[str, Any]


def _store_has_customers(url: str) -> bool:
    from pathlib import Path

    from lojal.store import connect, schema
    from lojal.store.db import require_schema

    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        return False
    engine = connect(url)
    try:
        require_schema(engine)
        with engine.connect() as conn:
            return bool(conn.execute(select(func.count()).select_from(schema.customers)).scalar_one())
    except (LojalError, SQLAlchemyError):
        return False
    finally:
        engine.dispose()


def store_samples(paths: Paths, config: ProjectConfig, run_date: date | None = None
                  ) -> dict[tuple[str, str], StoreSample] | None:
    """(campaign id, locale) -> a real customer of tonight's audience; None when the store is empty
    or the segments cannot be loaded (the preview then uses the built-in samples)."""
    from lojal import ledger
    from lojal.clock import shop_today
    from lojal.features import compute_features
    from lojal.markets import MarketCatalogue
    from lojal.pipeline import (Night, Project, _customer_contexts, _last_orders, _localize_orders, _localized,
                                _recommend_per_market)
    from lojal.decisions import SELECTED, decide, shop_secret
    from lojal.reco import fit_recommender
    from lojal.segments import evaluate_segments, load_segments
    from lojal.store import connect, load_shop_data

    if not _store_has_customers(paths.database_url):
        return None
    try:
        segments = load_segments(paths)
    except LojalError:
        return None
    run_date = run_date or shop_today(config.brand.timezone)
    engine = connect(paths.database_url)
    try:
        data = load_shop_data(engine, run_date, config.brand.timezone, config.market_set)
        features = compute_features(data, config.loyalty, None)
        membership = evaluate_segments(segments, features, data)
        log = decide(config.campaigns, data, features, membership, ledger.history_rows(engine),
                     now=pd.Timestamp.now(tz="UTC").tz_localize(None), shop_timezone=config.brand.timezone,
                     secret=shop_secret(paths, config), run_date=run_date)
        chosen = log[log["decision"] == SELECTED]
        catalogue = MarketCatalogue(config.market_set, data.products, data.prices, data.texts)
        night = Night(Project(paths, config, segments, None), run_date, engine, data, features, membership,
                      fit_recommender(data), catalogue=catalogue)  # type: ignore[arg-type]
        samples: dict[tuple[str, str], StoreSample] = {}
        for campaign in config.campaigns.enabled:
            picked = _one_per_locale(chosen.loc[chosen["campaign"] == campaign.id, "customer_id"], data.customers)
            if not picked:
                continue
            ids = pd.Index(sorted(picked.values()), dtype="int64").to_numpy()
            customers = _customer_contexts(night, ids)
            last_orders = _last_orders(data, features, ids)
            _localize_orders(night, customers, last_orders)
            spec = campaign.recommendations
            recs = _recommend_per_market(night, ids, customers, spec, None) if spec is not None else {}
            for locale, cid in picked.items():
                message_id = f"preview-{campaign.id}-{cid}"
                context = {
                    "customer": customers[cid],
                    "recommendations": [_localized(night, r.to_context(), customers[cid]) for r in recs.get(cid, [])],
                    "last_order": last_orders.get(cid),
                    "campaign": {"id": campaign.id, "name": campaign.name},
                    "message": {"id": message_id, "run_date": run_date,
                                "unsubscribe_url": config.unsubscribe_url_template.replace("{token}", message_id)},
                }
                samples[(campaign.id, locale)] = StoreSample(f"{locale}-{cid}", locale, context)
        return samples
    finally:
        engine.dispose()



def _one_per_locale(recipients: pd.Series, customers: pd.DataFrame) -> dict[str, int]:
    """The first recipient (lowest id) of each locale."""
    locales = customers["locale"].reindex(recipients.astype("int64"))
    picked: dict[str, int] = {}
    for cid, locale in zip(recipients.astype("int64"), locales):
        if locale in LOCALES and locale not in picked:
            picked[locale] = int(cid)
    return picked
