"""Attribution: which e-mail (campaign, arm, day) an order is credited to, with money held exactly.

An order is credited to at most one message:

1. **By link** — the shop passed the message id through (the `lojal_mid` parameter every tracked
   link carries, see `lojal.tracking.links`), and the message was sent to that customer before
   the order: that message.
2. **Else by last click** — the customer's last click on any Lojal e-mail in the window before
   the order (default 5 days, `tracking.attribution_window_days`).
3. **Opens** count only when `tracking.attribute_opens` is on, after clicks, and never machine
   opens (Apple Mail Privacy Protection and other prefetchers open every message: `machine_open`).

This is the attributed revenue e-mail vendors show: it says what e-mail touched, not what it
caused (lojal.tracking.lift measures that against the held-out customers).
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

LINK, CLICK, OPEN = "link", "click", "open"


@dataclass(frozen=True)
class Send:
    message_id: str
    campaign_id: str
    customer_id: int
    arm: str = ""
    sent_at: datetime | None = None


@dataclass(frozen=True)
class Touch:
    message_id: str
    kind: str  # click | open
    at: datetime
    machine: bool = False


@dataclass(frozen=True)
class Order:
    order_id: int
    customer_id: int
    placed_at: datetime
    revenue: Decimal
    message_id: str | None = None  # passed through by the shop from the link's lojal_mid


@dataclass(frozen=True)
class Credit:
    order_id: int
    message_id: str
    campaign_id: str
    arm: str
    day: date  # the order's day
    revenue: Decimal
    how: str  # link | click | open


def attribute(orders: Iterable[Order], sends: Mapping[str, Send], touches: Iterable[Touch],
              window_days: float = 5, use_opens: bool = False) -> list[Credit]:
    window = timedelta(days=window_days)
    by_customer: dict[int, dict[str, list[tuple[datetime, str]]]] = defaultdict(lambda: {CLICK: [], OPEN: []})
    for touch in touches:
        send = sends.get(touch.message_id)
        if send is None or touch.kind not in (CLICK, OPEN) or (touch.kind == OPEN and touch.machine):
            continue
        by_customer[send.customer_id][touch.kind].append((touch.at, touch.message_id))
    for lists in by_customer.values():
        for entries in lists.values():
            entries.sort()
    credits = []
    for order in orders:
        found = _by_link(order, sends) or _last_touch(order, by_customer.get(order.customer_id), window, use_opens)
        if found:
            message_id, how = found
            send = sends[message_id]
            credits.append(Credit(order.order_id, message_id, send.campaign_id, send.arm, order.placed_at.date(),
                                  order.revenue, how))
    return credits


def _by_link(order: Order, sends: Mapping[str, Send]) -> tuple[str, str] | None:
    send = sends.get(order.message_id) if order.message_id else None
    if send is None or send.customer_id != order.customer_id:
        return None
    if send.sent_at is not None and send.sent_at > order.placed_at:
        return None
    return send.message_id, LINK


def _last_touch(order: Order, lists, window: timedelta, use_opens: bool) -> tuple[str, str] | None:
    if not lists:
        return None
    for kind in (CLICK, OPEN) if use_opens else (CLICK,):
        entries = lists[kind]
        i = bisect.bisect_right(entries, (order.placed_at, "\uffff"))
        if i and order.placed_at - entries[i - 1][0] <= window:
            return entries[i - 1][1], kind
    return None


@dataclass
class Tally:
    conversions: int = 0
    revenue: Decimal = Decimal(0)


def totals(credits: Iterable[Credit]) -> dict[tuple[str, str, date], Tally]:
    """Conversions (orders) and exact revenue per (campaign, arm, day)."""
    out: dict[tuple[str, str, date], Tally] = defaultdict(Tally)
    for credit in credits:
        tally = out[(credit.campaign_id, credit.arm, credit.day)]
        tally.conversions += 1
        tally.revenue += credit.revenue
    return dict(out)
