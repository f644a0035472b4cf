"""Who gets which campaign tonight, and why everyone else does not. Pure functions.

Campaigns are considered by priority (highest first). For each, a matching customer is
excluded, with the first reason that applies, when they may not be mailed (consent,
suppression, address), when the campaign's occasion does not exist for them, when they already
received this campaign for this occasion on an earlier night, or when higher-priority campaigns
already use tonight's allowance (`max_emails_per_customer_per_run`).

`received` holds what each customer received (or may have), by the night it counts for: the
night its provider accepted it, not the night it was planned for. What a customer already has
tonight (received tonight, in a re-run; or planned on an earlier night and sent late tonight,
`carried`) takes their allowance before any campaign is considered, so a re-run never frees a
place and mails someone a second campaign.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date

import numpy as np
import pandas as pd

from lojal.audience import exclusion_reasons
from lojal.config import Campaign, CampaignsFile
from lojal.store.shopdata import ShopData

NO_OCCASION = "no triggering occasion"
ALREADY_RECEIVED = "already received for this occasion"
HIGHER_PRIORITY = "gets higher-priority"  # + " <campaigns> tonight"
SENT_EARLIER_TONIGHT = "already sent tonight (a re-run)"
CARRIED_OVER = "planned on an earlier night, sent late tonight"


@dataclass
class CampaignAudience:
    campaign: Campaign
    matched: int
    recipients: pd.DataFrame  # customer_id, occasion_key (sorted by customer_id)
    exclusions: Counter = field(default_factory=Counter)


def occasion_keys(kind: str, features: pd.DataFrame, run_date: date) -> pd.Series:
    """The occasion key per customer (NA where the occasion does not exist)."""
    index = features.index
    if kind == "last_order":
        ids = features["last_order_id"]
        return ("order:" + ids.astype("Int64").astype(str)).where(ids.notna())
    if kind == "lapse":
        last = pd.to_datetime(features["last_order_at"])
        return ("lapse:" + last.dt.strftime("%Y-%m-%d")).where(last.notna())
    if kind == "tier":
        return ("tier:" + features["tier"].astype(str)).where(features["tier"].notna())
    if kind == "birthday":
        return pd.Series(f"birthday:{run_date.year}", index=index)
    if kind == "run_date":
        return pd.Series(f"date:{run_date.isoformat()}", index=index)
    if kind == "once":
        return pd.Series("once", index=index)
    raise ValueError(f"unknown occasion kind {kind!r}")


def assign_campaigns(campaigns: CampaignsFile, data: ShopData, features: pd.DataFrame,
                     membership: pd.DataFrame, received: pd.DataFrame,
                     carried: pd.DataFrame | None = None) -> list[CampaignAudience]:
    """Decide tonight's recipients of every enabled campaign (see module docstring). `received`:
    campaign_id, customer_id, occasion_key, night; `carried`: campaign_id, customer_id."""
    run_date = data.run_date
    blocked = exclusion_reasons(data).reindex(features.index)
    allowance = pd.Series(campaigns.max_emails_per_customer_per_run, index=features.index)
    taken_by = pd.Series("", index=features.index, dtype=object)  # tonight's earlier campaigns, joined
    held = _held_tonight(received, carried, run_date)
    for campaign_id, ids in held.groupby("campaign_id")["customer_id"]:
        ids = features.index.intersection(ids.astype("int64"))
        allowance[ids] -= 1
        taken_by[ids] = np.where(taken_by[ids] == "", campaign_id, taken_by[ids] + ", " + campaign_id)
    audiences = []
    for campaign in campaigns.enabled:
        matched = membership[campaign.segment].reindex(features.index, fill_value=False).to_numpy(bool)
        keys = occasion_keys(campaign.occasion, features, run_date)
        reasons = pd.Series(None, index=features.index, dtype=object)
        reasons[blocked.notna()] = blocked
        reasons[reasons.isna() & keys.isna()] = NO_OCCASION
        earlier = _sent_before(received, campaign.id, run_date, features.index, keys)
        reasons[reasons.isna() & earlier] = ALREADY_RECEIVED
        mine = held[held["campaign_id"] == campaign.id].set_index("customer_id")["reason"]
        reasons[reasons.isna()] = mine.reindex(features.index)[reasons.isna()]
        selected = matched & reasons.isna().to_numpy() & (allowance > 0).to_numpy()
        exclusions = _count_exclusions(matched, reasons, allowance, taken_by)
        taken_by[selected] = np.where(taken_by[selected] == "", campaign.id, taken_by[selected] + ", " + campaign.id)
        allowance[selected] -= 1
        recipients = pd.DataFrame({"customer_id": features.index[selected].astype("int64"),
                                   "occasion_key": keys[selected].astype(str).to_numpy()})
        audiences.append(CampaignAudience(campaign, int(matched.sum()), recipients, exclusions))
    return audiences


def _held_tonight(received: pd.DataFrame, carried: pd.DataFrame | None, run_date: date) -> pd.DataFrame:
    """Customers who already have tonight's message of a campaign: received tonight (a re-run) or
    planned on an earlier night and sent late tonight. campaign_id, customer_id, reason."""
    tonight = received.loc[received["night"] == run_date, ["campaign_id", "customer_id"]].assign(
        reason=SENT_EARLIER_TONIGHT)
    late = (carried[["campaign_id", "customer_id"]].assign(reason=CARRIED_OVER) if carried is not None
            else pd.DataFrame(columns=["campaign_id", "customer_id", "reason"]))
    held = pd.concat([tonight, late], ignore_index=True).drop_duplicates(["campaign_id", "customer_id"])
    return held.astype({"customer_id": "int64"})


def _count_exclusions(matched: np.ndarray, reasons: pd.Series, allowance: pd.Series,
                      taken_by: pd.Series) -> Counter:
    counts: Counter = Counter(reasons[matched].dropna().value_counts().to_dict())
    over = matched & reasons.isna().to_numpy() & (allowance <= 0).to_numpy()
    for campaigns, count in taken_by[over].value_counts().items():
        counts[f"{HIGHER_PRIORITY} {campaigns} tonight"] += int(count)
    return counts


def _sent_before(sent: pd.DataFrame, campaign_id: str, run_date: date, index: pd.Index,
                 keys: pd.Series) -> pd.Series:
    """Mask over customers: this occasion was received on an earlier night. (Received tonight
    holds tonight's allowance: `_held_tonight`.)"""
    rows = sent[sent["campaign_id"] == campaign_id]
    if rows.empty:
        return pd.Series(False, index=index)
    joined = pd.DataFrame({"customer_id": index, "occasion_key": keys.to_numpy()}).merge(
        rows, on=["customer_id", "occasion_key"], how="left")
    earlier = joined["night"].notna() & (joined["night"] != run_date)
    return pd.Series(earlier.to_numpy(), index=index)
