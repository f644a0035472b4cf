"""Tables of the store. Times are stored as naive UTC; money is exact (NUMERIC) in the database.

Changing a table here needs a migration beside it (docs/operations.md, "Adding a migration"):
`lojal db revision -m "what changed"` writes one from the difference, and the test suite fails
while the migrations' head differs from this metadata.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger, Boolean, Column, Date, DateTime, Float, ForeignKey, Index, Integer,
    MetaData, Numeric, String, Table, Text, UniqueConstraint,
)

# Constraint names as PostgreSQL itself chooses them, so that a store created before the
# migrations (by `create_all`, names left to the database) already carries these names there.
NAMING_CONVENTION = {
    "pk": "%(table_name)s_pkey",
    "uq": "%(table_name)s_%(column_0_N_name)s_key",
    "fk": "%(table_name)s_%(column_0_N_name)s_fkey",
    "ck": "%(table_name)s_%(column_0_name)s_check",
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

# Exact in the database; read back as float, which is what the frames compute with.
Money = Numeric(14, 4, asdecimal=False)

customers = Table(
    "customers", metadata,
    Column("customer_id", BigInteger, primary_key=True, autoincrement=False),
    Column("email", String(254), nullable=False, unique=True),
    Column("first_name", String(100), nullable=False, default=""),
    Column("locale", String(5), nullable=False),
    Column("country", String(2), nullable=False),
    Column("time_zone", String(64), nullable=False),
    Column("birthday", Date, nullable=True),
    Column("created_at", DateTime, nullable=False),
    Column("consent_email", Boolean, nullable=False, default=False),
    Column("consent_at", DateTime, nullable=True),
    Column("consent_source", String(64), nullable=True),
)

products = Table(
    "products", metadata,
    Column("sku", String(64), primary_key=True),
    Column("title", String(200), nullable=False),
    Column("category", String(100), nullable=False),
    Column("price", Money, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("image_url", String(500), nullable=True),
    Column("product_url", String(500), nullable=True),
    Column("in_stock", Boolean, nullable=False, default=True),
    Column("margin", Float, nullable=True),  # gross margin as a share of price (0.35 = 35%), if known
)

orders = Table(
    "orders", metadata,
    Column("order_id", BigInteger, primary_key=True, autoincrement=False),
    Column("customer_id", BigInteger, ForeignKey("customers.customer_id"), nullable=False),
    Column("placed_at", DateTime, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("lojal_message_id", String(64), nullable=True),  # the e-mail the order came from (lojal_mid), if the shop passed it
    Index("ix_orders_customer_placed", "customer_id", "placed_at"),
    Index("ix_orders_placed", "placed_at"),
)

order_lines = Table(
    "order_lines", metadata,
    Column("order_id", BigInteger, ForeignKey("orders.order_id"), primary_key=True),
    Column("line_no", Integer, primary_key=True),
    Column("sku", String(64), ForeignKey("products.sku"), nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("unit_price", Money, nullable=False),
)

suppressions = Table(
    "suppressions", metadata,
    Column("email", String(254), primary_key=True),
    Column("reason", String(32), nullable=False),  # unsubscribe, bounce, spam_report, manual
    Column("source", String(64), nullable=True),
    Column("created_at", DateTime, nullable=False),
    Column("asm_group_id", Integer, nullable=True),  # the SendGrid unsubscribe group (reason group_unsubscribe)
    Column("event_id", String(100), nullable=True),  # the delivery_events.sg_event_id it came from, if any
)

# One row per (campaign, customer, occasion): what makes a repeated or resumed run send nothing twice.
# States (lojal.ledger): planned -> sending -> sent | rejected | failed | unknown | abandoned, and
# expired (planned on an earlier night, not sent within the campaign's limit); held_out (the campaign's
# holdout group: never sent, counts as received for its occasion).
LEDGER_TOAST_TUPLE_TARGET = 128  # PostgreSQL's smallest

send_ledger = Table(
    "send_ledger", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("campaign_id", String(64), nullable=False),
    Column("customer_id", BigInteger, nullable=False),
    Column("occasion_key", String(128), nullable=False),
    Column("run_date", Date, nullable=False),  # the night it was planned for
    Column("message_id", String(64), nullable=False, unique=True),
    Column("state", String(16), nullable=False),
    Column("planned_at", DateTime, nullable=False),
    Column("attempts", Integer, nullable=False, default=0),  # provider attempts so far
    Column("attempted_at", DateTime, nullable=True),  # when the latest attempt was committed `sending`
    Column("attempt_run_date", Date, nullable=True),  # the night of the run that made the latest attempt
    Column("backend", String(32), nullable=True),  # the backend of the latest attempt (outbox, sendgrid)
    Column("accepted_at", DateTime, nullable=True),  # when the provider accepted it (state sent)
    Column("accepted_on", Date, nullable=True),  # the night it counts for: caps and "already received"
    Column("provider_message_id", String(128), nullable=True),  # SendGrid's X-Message-Id, or the outbox file
    Column("settled_at", DateTime, nullable=True),  # when the state last changed after planning
    Column("error", Text, nullable=True),  # provider error text, or why it was abandoned/expired
    # What the message is made of (reproducible sends, lojal.ledger.made_from / `lojal ledger show`):
    Column("variant", String(64), nullable=True),  # the A/B arm, if the campaign has arms
    Column("send_at", DateTime, nullable=True),  # naive UTC: SendGrid's send_at (local send time)
    Column("offer_code", String(64), nullable=True),  # the personal offer code, if the campaign has one
    Column("made_from", Text, nullable=True),  # JSON: file hashes, recommended items (strategy, score, reason)
    UniqueConstraint("campaign_id", "customer_id", "occasion_key", name="uq_ledger_occasion"),
    Index("ix_ledger_run", "run_date", "campaign_id", "state"),
    Index("ix_ledger_state", "state", "campaign_id"),
    Index("ix_ledger_attempt", "campaign_id", "attempt_run_date"),  # a campaign's attempts tonight (night_tally)
    # PostgreSQL keeps `made_from` (kilobytes of JSON) out of the row, so the updates of delivery (claim,
    # settle: a new row version each) copy and log a small row instead of the whole record (migration 0011).
    postgresql_with={"toast_tuple_target": LEDGER_TOAST_TUPLE_TARGET},
)

runs = Table(
    "runs", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_date", Date, nullable=False),
    Column("started_at", DateTime, nullable=False),
    Column("finished_at", DateTime, nullable=True),
    Column("status", String(16), nullable=False),  # running, completed, partial, failed
    Column("summary_json", Text, nullable=True),
    Column("error", Text, nullable=True),  # why a failed run stopped (one line)
    Column("flow_run_id", String(36), nullable=True),  # the Prefect flow run, to open it in the UI
)

# Markets (lojal.markets): a product's price in each market it is sold in. A product without rows
# here is sold at products.price where the market's currency is products.currency.
product_prices = Table(
    "product_prices", metadata,
    Column("sku", String(64), ForeignKey("products.sku"), primary_key=True),
    Column("market", String(32), primary_key=True),
    Column("currency", String(3), nullable=False),
    Column("price", Money, nullable=False),
)

# A product's title and category name per locale (the products row holds the shop's own).
product_texts = Table(
    "product_texts", metadata,
    Column("sku", String(64), ForeignKey("products.sku"), primary_key=True),
    Column("locale", String(5), primary_key=True),
    Column("title", String(200), nullable=False),
    Column("category", String(100), nullable=True),
)

# SendGrid's Event Webhook, one row per event (lojal.sendgrid.events), written before the webhook
# answers 2xx; sg_event_id makes a retried or replayed batch store nothing twice.
delivery_events = Table(
    "delivery_events", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("sg_event_id", String(100), nullable=False, unique=True),
    Column("event", String(32), nullable=False),  # normalized: processed, delivered, bounced, opened, ...
    Column("raw_event", String(32), nullable=True),  # SendGrid's own name: bounce, open, spamreport, ...
    Column("message_id", String(64), nullable=True, index=True),  # Lojal's, from custom_args lojal_message_id
    Column("provider_message_id", String(128), nullable=True),  # the X-Message-Id part of sg_message_id
    Column("email", String(254), nullable=True),
    Column("occurred_at", DateTime, nullable=True),  # naive UTC
    Column("received_at", DateTime, nullable=False),  # naive UTC
    Column("machine_open", Boolean, nullable=False, default=False),  # e.g. Apple MPP (sg_machine_open)
    Column("bounce_type", String(32), nullable=True),
    Column("reason", Text, nullable=True),
    Column("url", Text, nullable=True),
    Column("asm_group_id", Integer, nullable=True),
    Column("payload", Text, nullable=False),  # the event's raw JSON
)

# How far a consumer of an append-only table has read (e.g. `suppressions-from-events` up to
# delivery_events.id): re-runs start where the last one stopped, so an operator's removal stays removed.
tracking_cursors = Table(
    "tracking_cursors", metadata,
    Column("name", String(64), primary_key=True),
    Column("position", BigInteger, nullable=False),
    Column("updated_at", DateTime, nullable=False),
)
