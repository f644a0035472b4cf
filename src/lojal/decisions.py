"""Decide, then record: who gets which campaign tonight, when, in which variant, and why not.

`decide(...)` is a pure function returning one decision per (customer, campaign considered): every
customer in a campaign's segment gets a row that is `selected` (with its variant and `send_at`),
`held_out`, or `excluded` with the first reason that applies, in this order:

    no_consent, suppressed, invalid_email,    the audience gate (lojal.audience)
    same_mailbox
    no_occasion                               the campaign's occasion does not exist for them
    already_received                          the ledger has this (campaign, customer, occasion)
    tier_not_higher                           tier campaigns: they were congratulated on this tier or a higher one
    sent_tonight, sent_late                   (`tonight`) the customer already has this campaign's e-mail
                                              tonight: sent by an earlier run of the night, or planned on
                                              an earlier night and sent late tonight
    past_send_window                          the local send time / quiet hours put it beyond the window
    capped                                    a frequency cap is full with e-mails accepted on earlier nights
    lower_priority                            tonight's higher-priority campaigns took the allowance or the cap
    held_out (decision held_out)              in the campaign's holdout group

Campaigns are considered by priority (highest first), each step vectorized over its candidates;
the only loops are over campaigns, caps and distinct time zones. docs/planning.md explains every
decision for marketers.

Ledger history (`history`) is a DataFrame with at least these columns:
    campaign_id (str), customer_id (int), occasion_key (str), state (str),
    accepted_at (naive UTC datetime; NaT when SendGrid never accepted the message)
and optionally run_date (date): rows of the planned night itself are this night's own (a re-run
recomputes them instead of reporting them as already received or counting them against caps).

`tonight` (optional) lists what customers already have tonight outside this plan: campaign_id,
customer_id, reason (sent_tonight or sent_late), moment (naive UTC), for_caps (bool: count it
against frequency caps; False where `history` already holds it as accepted). Each takes one of the
customer's e-mails of the night first, so a re-run or a late send never frees a place.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd

from lojal import audience
from lojal.config import Campaign, CampaignsFile
from lojal.planning import occasion_keys
from lojal.store.shopdata import ShopData
from lojal.timezones import customer_zones, parse_clock, send_times

SELECTED, EXCLUDED, HELD_OUT = "selected", "excluded", "held_out"

NO_CONSENT, SUPPRESSED, INVALID_EMAIL = "no_consent", "suppressed", "invalid_email"
SAME_MAILBOX = "same_mailbox"
SENT_TONIGHT, SENT_LATE = "sent_tonight", "sent_late"
HIGHER_PRIORITY = "gets higher-priority"  # the start of a lower_priority detail: "... <campaign> tonight"
NO_OCCASION, ALREADY_RECEIVED, TIER_NOT_HIGHER = "no_occasion", "already_received", "tier_not_higher"
PAST_SEND_WINDOW, CAPPED, LOWER_PRIORITY = "past_send_window", "capped", "lower_priority"

REASONS: dict[str, str] = {  # code -> what a marketer reads (docs/planning.md has the long form)
    NO_CONSENT: "no e-mail marketing consent",
    SUPPRESSED: "on the suppression list",
    INVALID_EMAIL: "invalid e-mail address",
    SAME_MAILBOX: "same mailbox as another customer (addresses differ only in case)",
    NO_OCCASION: "no triggering occasion",
    ALREADY_RECEIVED: "already received for this occasion",
    TIER_NOT_HIGHER: "already congratulated on this tier or a higher one",
    SENT_TONIGHT: "already sent tonight (a re-run)",
    SENT_LATE: "planned on an earlier night, sent late tonight",
    PAST_SEND_WINDOW: "local send time / quiet hours fall after the send window",
    CAPPED: "frequency cap reached",
    LOWER_PRIORITY: "a higher-priority campaign goes first tonight",
    HELD_OUT: "in the holdout group (not mailed, to measure the campaign)",
}
_GATE_CODES = {audience.NO_CONSENT: NO_CONSENT, audience.SUPPRESSED: SUPPRESSED, audience.INVALID_EMAIL: INVALID_EMAIL,
               audience.NEEDS_SMTPUTF8: INVALID_EMAIL, audience.SAME_MAILBOX: SAME_MAILBOX}
TONIGHT_COLUMNS = ("campaign_id", "customer_id", "reason", "moment", "for_caps")

# Ledger states meaning the customer got (or may have got, or was deliberately held out of) the occasion.
RECEIVED_STATES = frozenset({"sending", "sent", "unknown", "held_out"})
HISTORY_COLUMNS = ("campaign_id", "customer_id", "occasion_key", "state", "accepted_at")
DECISION_COLUMNS = ("customer_id", "campaign", "priority", "decision", "reason", "detail", "occasion_key",
                    "variant", "send_at", "offer_code")

_EPOCH = np.datetime64("2000-01-01T00:00:00", "s")
_MAX_SECONDS = (1 << 32) - 1


# ---------------------------------------------------------------- the shop's secret and hashing

@dataclass(frozen=True)
class ShopSecret:
    """The per-shop salt behind holdouts, arms and offer codes. Its repr never shows the value."""
    value: bytes

    def __repr__(self) -> str:
        return "ShopSecret(***)"

    __str__ = __repr__


def shop_secret(paths, config=None, environ: dict[str, str] | None = None) -> ShopSecret:
    """The shop's one secret (lojal.secrets: LOJAL_SECRET, the Prefect Secret block in
    tracking.secret_block, or the store's generated `<state>/secret.key`) as the planner's key."""
    from lojal.secrets import shop_secret_bytes

    return ShopSecret(shop_secret_bytes(paths, config, environ))


def _key64(secret: ShopSecret, *parts: str) -> np.uint64:
    digest = hmac.new(secret.value, "\x1f".join(parts).encode(), hashlib.sha256).digest()
    return np.uint64(int.from_bytes(digest[:8], "big"))


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer: a bijective, well-mixed map of uint64 (wrapping arithmetic)."""
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _hash64(secret: ShopSecret, purpose: str, campaign_id: str, customer_ids: np.ndarray) -> np.ndarray:
    key = _key64(secret, purpose, campaign_id)
    ids = np.asarray(customer_ids, dtype=np.int64).view(np.uint64)
    with np.errstate(over="ignore"):
        return _mix64(_mix64(ids ^ key) + key)


def unit_hash(secret: ShopSecret, purpose: str, campaign_id: str, customer_ids: np.ndarray) -> np.ndarray:
    """A number in [0, 1) per customer, fixed for (secret, purpose, campaign, customer): the same
    every night, unrelated between purposes (holdout, arm) and campaigns, unguessable without the secret."""
    return (_hash64(secret, purpose, campaign_id, customer_ids) >> np.uint64(11)).astype(np.float64) * 2.0 ** -53


def held_out(campaign: Campaign, customer_ids: np.ndarray, secret: ShopSecret) -> np.ndarray:
    """Mask: these customers are in the campaign's holdout group (stable across nights)."""
    if campaign.holdout <= 0:
        return np.zeros(len(customer_ids), dtype=bool)
    return unit_hash(secret, "holdout", campaign.id, customer_ids) < campaign.holdout


def arm_names(campaign: Campaign, customer_ids: np.ndarray, secret: ShopSecret) -> np.ndarray:
    """The A/B arm of each customer (by weight, deterministic); None for campaigns without arms."""
    if not campaign.arms:
        return np.full(len(customer_ids), None, dtype=object)
    weights = np.array([a.weight for a in campaign.arms], dtype=float)
    bounds = np.cumsum(weights) / weights.sum()
    picks = np.searchsorted(bounds, unit_hash(secret, "arm", campaign.id, customer_ids), side="right")
    names = np.array([a.name for a in campaign.arms], dtype=object)
    return names[np.minimum(picks, len(names) - 1)]


_CROCKFORD = np.array(list("0123456789ABCDEFGHJKMNPQRSTVWXYZ"))


def offer_codes(campaign: Campaign, customer_ids: np.ndarray, secret: ShopSecret) -> np.ndarray:
    """PREFIX-XXXXXXXX per customer (Crockford base32 of a keyed hash): personal, stable, not guessable."""
    if campaign.offer is None:
        return np.full(len(customer_ids), None, dtype=object)
    length = campaign.offer.length
    high = _hash64(secret, "offer", campaign.id, customer_ids)
    low = _hash64(secret, "offer2", campaign.id, customer_ids)
    chars = []
    for i in range(length):
        source, shift = (high, 5 * i) if i < 12 else (low, 5 * (i - 12))
        chars.append(_CROCKFORD[((source >> np.uint64(shift)) & np.uint64(31)).astype(np.int64)])
    body = chars[0].astype(object)
    for column in chars[1:]:
        body = body + column.astype(object)
    return (campaign.offer.prefix + "-") + body


# ---------------------------------------------------------------- caps: events as sorted int64 keys

def _event_keys(codes: np.ndarray, moments: np.ndarray) -> np.ndarray:
    """customer code in the high 32 bits, seconds since 2000 (clipped) in the low 32: sortable per customer."""
    seconds = (moments.astype("datetime64[s]") - _EPOCH).astype(np.int64)
    return (codes.astype(np.int64) << 32) | np.clip(seconds, 0, _MAX_SECONDS)


def _count_near(sorted_keys: np.ndarray, codes: np.ndarray, moments: np.ndarray, hours: int) -> np.ndarray:
    """Per candidate: events of the same customer less than `hours` before or after its moment."""
    if len(sorted_keys) == 0:
        return np.zeros(len(codes), dtype=np.int64)
    width = np.timedelta64(hours * 3600 - 1, "s")
    upper = np.searchsorted(sorted_keys, _event_keys(codes, moments + width), side="right")
    lower = np.searchsorted(sorted_keys, _event_keys(codes, moments - width), side="left")
    return upper - lower


# ---------------------------------------------------------------- the planner

@dataclass
class _Night:
    """What every campaign's step reads and updates: arrays over the pool (customers matching any
    enabled campaign), a customer's position in it being their code."""
    ids: np.ndarray                  # customer ids, position = code
    gate: np.ndarray                 # object: gate reason code or None
    gate_text: np.ndarray            # object: the gate's own words (its detail) or None
    zones: np.ndarray                # object: zone name per customer
    taken: np.ndarray                # int: messages selected tonight per customer
    first_taker: np.ndarray          # int: index of tonight's first selected campaign, -1 if none
    history_keys: np.ndarray         # sorted event keys of accepted messages that count against caps
    tonight_codes: list              # arrays of codes selected tonight (campaigns that count)
    tonight_moments: list            # their send_at
    held: dict                       # campaign id -> Series customer id -> reason (sent_tonight / sent_late)


def decide(campaigns: CampaignsFile, data: ShopData, features: pd.DataFrame, membership: pd.DataFrame,
           history: pd.DataFrame, *, now: pd.Timestamp, shop_timezone: str, secret: ShopSecret,
           run_date: date | None = None, tier_order: Sequence[str] | None = None,
           tonight: pd.DataFrame | None = None, only: Sequence[str] | None = None) -> pd.DataFrame:
    """One row per (customer, enabled campaign whose segment they match): the decision and why.

    `now` is the planning moment (naive UTC): local send times and caps are measured from it.
    `run_date` defaults to `data.run_date` (occasion keys such as birthdays use it). `tier_order`
    lists tier names from lowest to highest (config.loyalty); by default it is read from the
    features' tier / tier_rank columns. `only`: decide these campaigns alone (`lojal run --campaign`).
    Columns: see DECISION_COLUMNS and docs/planning.md."""
    run_date = run_date or data.run_date
    now = pd.Timestamp(now)
    if now.tzinfo is not None:
        now = now.tz_convert("UTC").tz_localize(None)
    enabled = [c for c in campaigns.enabled if only is None or c.id in only]
    if not enabled:
        return pd.DataFrame({c: [] for c in DECISION_COLUMNS})
    # Everything below works on the pool: customers matching at least one enabled campaign.
    matched = membership[sorted({c.segment for c in enabled})].reindex(features.index, fill_value=False)
    pool = np.flatnonzero(matched.to_numpy(dtype=bool).any(axis=1))
    index = features.index[pool]
    matched = matched.iloc[pool]
    needed = [c for c in ("last_order_id", "last_order_at", "tier") if c in features.columns]
    pool_features = features[needed].iloc[pool]
    history = _own_history(_about(history, index), run_date)
    customers = data.customers[["email", "consent_email", "time_zone"]].reindex(index)
    exempt = {c.id for c in campaigns.campaigns if c.exempt_from_caps}
    gate_text = audience.exclusion_reasons(data, among=index)
    night = _Night(
        ids=index.to_numpy(dtype=np.int64),
        gate=gate_text.map(_GATE_CODES).to_numpy(dtype=object), gate_text=gate_text.to_numpy(dtype=object),
        zones=customer_zones(customers["time_zone"], shop_timezone).to_numpy(dtype=object),
        taken=np.zeros(len(pool), dtype=np.int64), first_taker=np.full(len(pool), -1),
        history_keys=_cap_history(history, index, exempt, campaigns, now), tonight_codes=[], tonight_moments=[],
        held={})
    _take_tonight(night, tonight, enabled, exempt, index)
    received = _received_by_campaign(history[history["campaign_id"].isin([c.id for c in enabled]).to_numpy()])
    ranks = _tier_ranks(tier_order, features)
    frames = [_decide_campaign(i, campaign, campaigns, enabled, night, pool_features, matched, received,
                               now, run_date, secret, ranks)
              for i, campaign in enumerate(enabled)]
    return pd.concat(frames, ignore_index=True)


def _take_tonight(night: _Night, tonight: pd.DataFrame | None, enabled: list[Campaign], exempt: set[str],
                  index: pd.Index) -> None:
    """What customers already have tonight takes their e-mails of the night (and counts for caps) first."""
    if tonight is None or tonight.empty:
        return
    codes = index.get_indexer(tonight["customer_id"].to_numpy(dtype=np.int64))
    rows = tonight[codes >= 0]
    codes = codes[codes >= 0]
    np.add.at(night.taken, codes, 1)
    order = {c.id: i for i, c in enumerate(enabled)}
    takers = rows["campaign_id"].map(order).fillna(-1).to_numpy(dtype=np.int64)
    for code, taker in zip(codes, takers):
        if night.first_taker[code] < 0 and taker >= 0:
            night.first_taker[code] = taker
    counts = rows["for_caps"].to_numpy(dtype=bool) & ~rows["campaign_id"].isin(exempt).to_numpy()
    if counts.any():
        night.tonight_codes.append(codes[counts])
        night.tonight_moments.append(pd.to_datetime(rows["moment"]).to_numpy(dtype="datetime64[ns]")[counts])
    for campaign_id, group in rows.groupby("campaign_id"):
        night.held[str(campaign_id)] = group.drop_duplicates("customer_id").set_index("customer_id")["reason"]


def _own_history(history: pd.DataFrame, run_date: date) -> pd.DataFrame:
    """Without the planned night's own rows (a re-run decides them again)."""
    if "run_date" not in history.columns:
        return history
    dates = history["run_date"]
    if pd.api.types.is_datetime64_any_dtype(dates):
        tonight = (dates.dt.normalize() == pd.Timestamp(run_date)).to_numpy()
    else:  # datetime.date objects, as read from the ledger
        tonight = (dates.to_numpy(dtype=object) == run_date)
    return history[~tonight]


@dataclass
class _Received:
    """One campaign's received occasions: exact values and their pair hashes (a fast prefilter)."""
    customer: np.ndarray   # int64
    key: np.ndarray        # object (str)
    hashes: np.ndarray     # uint64, row by row
    sorted_hashes: np.ndarray


def _pair_hash(customer_ids: np.ndarray, keys: np.ndarray) -> np.ndarray:
    text = pd.util.hash_array(np.asarray(keys, dtype=object), categorize=False)
    with np.errstate(over="ignore"):
        return _mix64(text ^ _mix64(np.asarray(customer_ids, dtype=np.int64).view(np.uint64)))


def _received_by_campaign(history: pd.DataFrame) -> dict[str, _Received]:
    """History rows meaning the occasion was received, per campaign."""
    rows = history[history["state"].isin(RECEIVED_STATES).to_numpy() | history["accepted_at"].notna().to_numpy()]
    codes, names = pd.factorize(rows["campaign_id"])
    customer = rows["customer_id"].to_numpy(dtype=np.int64)
    key = rows["occasion_key"].to_numpy(dtype=object)
    hashes = _pair_hash(customer, key)
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(len(names) + 1))
    out = {}
    for i, name in enumerate(names):
        take = order[bounds[i]:bounds[i + 1]]
        out[str(name)] = _Received(customer[take], key[take], hashes[take], np.sort(hashes[take]))
    return out


def _about(history: pd.DataFrame, index: pd.Index) -> pd.DataFrame:
    """The history of the customers being planned (it checks the required columns first)."""
    missing = [c for c in HISTORY_COLUMNS if c not in history.columns]
    if missing:
        raise ValueError(f"ledger history lacks columns {missing}; it needs {list(HISTORY_COLUMNS)}")
    return history[index.get_indexer(history["customer_id"].to_numpy(dtype=np.int64)) >= 0]


def _cap_history(history: pd.DataFrame, index: pd.Index, exempt: set[str], campaigns: CampaignsFile,
                 now: pd.Timestamp) -> np.ndarray:
    """Sorted event keys of accepted e-mails that count against the caps (recent enough to matter)."""
    if not campaigns.frequency_caps:
        return np.array([], dtype=np.int64)
    since = now - pd.Timedelta(hours=max(cap.hours for cap in campaigns.frequency_caps))
    accepted_at = pd.to_datetime(history["accepted_at"])
    accepted = history[(accepted_at > since).to_numpy() & ~history["campaign_id"].isin(exempt).to_numpy()]
    codes = index.get_indexer(accepted["customer_id"].to_numpy(dtype=np.int64))
    known = codes >= 0
    moments = pd.to_datetime(accepted["accepted_at"]).to_numpy(dtype="datetime64[ns]")[known]
    return np.sort(_event_keys(codes[known], moments))


def _tier_ranks(tier_order: Sequence[str] | None, features: pd.DataFrame) -> dict[str, int]:
    if tier_order is not None:
        return {name: rank for rank, name in enumerate(tier_order)}
    if {"tier", "tier_rank"} <= set(features.columns):
        pairs = features[["tier", "tier_rank"]].dropna().drop_duplicates()
        return dict(zip(pairs["tier"].astype(str), pairs["tier_rank"].astype(int)))
    return {}


def _decide_campaign(index: int, campaign: Campaign, campaigns: CampaignsFile, enabled: list[Campaign],
                     night: _Night, features: pd.DataFrame, matched: pd.DataFrame,
                     received: dict[str, _Received], now: pd.Timestamp, run_date: date, secret: ShopSecret,
                     ranks: dict[str, int]) -> pd.DataFrame:
    codes = np.flatnonzero(matched[campaign.segment].to_numpy(dtype=bool))
    ids = night.ids[codes]
    keys = occasion_keys(campaign.occasion, features.iloc[codes], run_date).to_numpy(dtype=object)
    reason = night.gate[codes].copy()
    detail = night.gate_text[codes].copy()  # the gate's own words (e.g. why an address cannot be used)
    _first(reason, pd.isna(keys), NO_OCCASION)
    earlier = received.get(campaign.id)
    _first(reason, _received(earlier, ids, keys), ALREADY_RECEIVED)
    if campaign.occasion == "tier":
        _first(reason, _tier_not_higher(earlier, ids, features.iloc[codes], ranks), TIER_NOT_HIGHER)
    held = night.held.get(campaign.id)
    if held is not None:
        mine = held.reindex(ids).to_numpy(dtype=object)
        for code in (SENT_TONIGHT, SENT_LATE):
            _first(reason, mine == code, code)
    send_at = _send_at(campaign, campaigns, night.zones[codes], now)
    window = campaign.send_time.window_hours if campaign.send_time else 24
    late = send_at - now.to_datetime64() > np.timedelta64(window, "h")
    _first(reason, late, PAST_SEND_WINDOW, detail, f"would go out after the {window}-hour send window")
    _apply_caps(campaign, campaigns, night, codes, send_at, reason, detail)
    full = night.taken[codes] >= campaigns.max_emails_per_customer_per_run
    _first(reason, full, LOWER_PRIORITY, detail, _takers(enabled, night.first_taker[codes]))
    open_ = pd.isna(reason)
    holdout = open_ & held_out(campaign, ids, secret)
    selected = open_ & ~holdout
    _record_selection(index, campaign, night, codes[selected], send_at[selected])
    decision = np.where(selected, SELECTED, np.where(holdout, HELD_OUT, EXCLUDED)).astype(object)
    reason[holdout] = HELD_OUT
    reason[selected] = None
    variant = np.full(len(codes), None, dtype=object)
    variant[selected] = arm_names(campaign, ids[selected], secret)
    offer = np.full(len(codes), None, dtype=object)
    offer[selected] = offer_codes(campaign, ids[selected], secret)
    shown = ~selected & pd.isna(detail)
    detail[shown] = pd.Series(reason[shown], dtype=object).map(REASONS).to_numpy(dtype=object)
    keep_time = selected | holdout
    text = {"campaign": np.full(len(codes), campaign.id, dtype=object), "decision": decision, "reason": reason,
            "detail": detail, "occasion_key": keys, "variant": variant, "offer_code": offer}
    columns = {name: pd.Series(values, dtype=object, copy=False) for name, values in text.items()}  # no string inference
    columns.update(customer_id=pd.Series(ids), priority=pd.Series(np.full(len(codes), campaign.priority)),
                   send_at=pd.Series(np.where(keep_time, send_at, np.datetime64("NaT")).astype("datetime64[ns]")))
    return pd.DataFrame(columns)[list(DECISION_COLUMNS)]


def _first(reason: np.ndarray, mask, code: str, detail: np.ndarray | None = None, text=None) -> None:
    """Set `code` (and its detail) where `mask` holds and no earlier reason applies."""
    mask = np.asarray(mask, dtype=bool) & pd.isna(reason)
    reason[mask] = code
    if detail is not None and text is not None:
        detail[mask] = text[mask] if isinstance(text, np.ndarray) else text


def _received(earlier: _Received | None, ids: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Mask: the ledger has this (customer, occasion) as received. Hashes narrow the candidates;
    the answer is then checked on the exact values (a hash collision can never exclude anyone)."""
    result = np.zeros(len(ids), dtype=bool)
    if earlier is None or len(ids) == 0:
        return result
    texts = pd.Series(keys, dtype=object).fillna("").to_numpy(dtype=object)
    hashes = _pair_hash(ids, texts)
    maybe = np.flatnonzero(np.isin(hashes, earlier.sorted_hashes))
    if len(maybe) == 0:
        return result
    rows = np.isin(earlier.hashes, hashes[maybe])
    exact = set(zip(earlier.customer[rows].tolist(), earlier.key[rows].tolist()))
    result[maybe] = [(int(i), k) in exact for i, k in zip(ids[maybe], texts[maybe])]
    return result


def _tier_not_higher(earlier: _Received | None, ids: np.ndarray, features: pd.DataFrame,
                     ranks: dict[str, int]) -> np.ndarray:
    """A tier congratulation only ever into a tier above every tier the customer was congratulated on."""
    rows = None
    if earlier is not None:
        rows = pd.DataFrame({"customer_id": earlier.customer, "occasion_key": pd.Series(earlier.key, dtype=object)})
        rows = rows[rows["occasion_key"].astype(str).str.startswith("tier:").to_numpy()]
    if rows is None or rows.empty or len(ids) == 0:
        return np.zeros(len(ids), dtype=bool)
    had = rows["occasion_key"].astype(str).str.slice(5).map(ranks).to_numpy(dtype=float)
    best = pd.Series(had).groupby(rows["customer_id"].to_numpy(dtype=np.int64)).max()
    now = features["tier"].astype(str).map(ranks).to_numpy(dtype=float)
    previous_best = best.reindex(ids).to_numpy(dtype=float)
    return ~np.isnan(previous_best) & ~(now > previous_best)


def _send_at(campaign: Campaign, campaigns: CampaignsFile, zones: np.ndarray, now: pd.Timestamp) -> np.ndarray:
    at = parse_clock(campaign.send_time.at) if campaign.send_time and campaign.send_time.at else None
    quiet = campaign.quiet_hours(campaigns.quiet_hours)
    span = quiet.span() if quiet else None
    if at is None and span is None:
        return np.full(len(zones), now.to_datetime64(), dtype="datetime64[ns]")
    codes, uniques = pd.factorize(pd.Series(zones, dtype=object))
    times = send_times(now, list(uniques), at, span)
    table = np.array([times[z].to_datetime64() for z in uniques], dtype="datetime64[ns]")
    return table[codes] if len(codes) else np.array([], dtype="datetime64[ns]")


def _apply_caps(campaign: Campaign, campaigns: CampaignsFile, night: _Night, codes: np.ndarray,
                send_at: np.ndarray, reason: np.ndarray, detail: np.ndarray) -> None:
    if campaign.exempt_from_caps or not campaigns.frequency_caps:
        return
    tonight = (np.sort(_event_keys(np.concatenate(night.tonight_codes), np.concatenate(night.tonight_moments)))
               if night.tonight_codes else np.array([], dtype=np.int64))
    for cap in campaigns.frequency_caps:
        earlier = _count_near(night.history_keys, codes, send_at, cap.hours)
        _first(reason, earlier >= cap.max, CAPPED, detail, f"{cap.describe()}: already mailed on earlier nights")
        with_tonight = earlier + _count_near(tonight, codes, send_at, cap.hours)
        _first(reason, with_tonight >= cap.max, LOWER_PRIORITY, detail,
               f"{cap.describe()}: a higher-priority campaign goes out tonight")


def _takers(enabled: list[Campaign], first_taker: np.ndarray) -> np.ndarray:
    names = np.array([f"{HIGHER_PRIORITY} {c.id} tonight" for c in enabled] + [""], dtype=object)
    return names[first_taker]


def _record_selection(index: int, campaign: Campaign, night: _Night, codes: np.ndarray, send_at: np.ndarray) -> None:
    night.taken[codes] += 1
    night.first_taker[codes] = np.where(night.first_taker[codes] < 0, index, night.first_taker[codes])
    if not campaign.exempt_from_caps:
        night.tonight_codes.append(codes)
        night.tonight_moments.append(send_at)


def funnel(decisions: pd.DataFrame) -> pd.DataFrame:
    """Per campaign: considered, each reason's count, held out, selected (for summaries and docs)."""
    counts = decisions.assign(reason=decisions["reason"].fillna(SELECTED)).pivot_table(
        index="campaign", columns="reason", values="customer_id", aggfunc="count", fill_value=0)
    counts.insert(0, "considered", counts.sum(axis=1))
    return counts
