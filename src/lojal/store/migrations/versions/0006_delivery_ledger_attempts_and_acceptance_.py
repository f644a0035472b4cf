"""delivery: ledger attempts and acceptance, delivery events

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 16:45:55.600868

Written by `lojal db revision`; read it, and make it keep every row (see docs/operations.md).
"""
from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('delivery_events',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('sg_event_id', sa.String(length=100), nullable=False),
    sa.Column('event', sa.String(length=32), nullable=False),
    sa.Column('raw_event', sa.String(length=32), nullable=True),
    sa.Column('message_id', sa.String(length=64), nullable=True),
    sa.Column('provider_message_id', sa.String(length=128), nullable=True),
    sa.Column('email', sa.String(length=254), nullable=True),
    sa.Column('occurred_at', sa.DateTime(), nullable=True),
    sa.Column('received_at', sa.DateTime(), nullable=False),
    sa.Column('machine_open', sa.Boolean(), nullable=False),
    sa.Column('bounce_type', sa.String(length=32), nullable=True),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('url', sa.Text(), nullable=True),
    sa.Column('asm_group_id', sa.Integer(), nullable=True),
    sa.Column('payload', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('delivery_events_pkey')),
    sa.UniqueConstraint('sg_event_id', name=op.f('delivery_events_sg_event_id_key'))
    )
    with op.batch_alter_table('delivery_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_delivery_events_message_id'), ['message_id'], unique=False)

    with op.batch_alter_table('send_ledger', schema=None) as batch_op:
        batch_op.add_column(sa.Column('attempted_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('attempt_run_date', sa.Date(), nullable=True))
        batch_op.add_column(sa.Column('backend', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('accepted_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('accepted_on', sa.Date(), nullable=True))
        batch_op.add_column(sa.Column('provider_message_id', sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column('settled_at', sa.DateTime(), nullable=True))
        batch_op.create_index('ix_ledger_state', ['state', 'campaign_id'], unique=False)

    # Keep what the ledger knew: a sent row (only the outbox could send before this revision) was
    # accepted when it was sent, on the night it was planned for; caps and "already received" count it.
    ledger = sa.table('send_ledger', sa.column('state', sa.String), sa.column('run_date', sa.Date),
                      sa.column('sent_at', sa.DateTime), sa.column('attempted_at', sa.DateTime),
                      sa.column('attempt_run_date', sa.Date), sa.column('backend', sa.String),
                      sa.column('accepted_at', sa.DateTime), sa.column('accepted_on', sa.Date),
                      sa.column('settled_at', sa.DateTime))
    op.execute(ledger.update().where(ledger.c.state == 'sent').values(
        accepted_at=ledger.c.sent_at, attempted_at=ledger.c.sent_at, settled_at=ledger.c.sent_at,
        accepted_on=ledger.c.run_date, attempt_run_date=ledger.c.run_date, backend='outbox'))

    with op.batch_alter_table('send_ledger', schema=None) as batch_op:
        batch_op.drop_column('sent_at')


def downgrade() -> None:
    with op.batch_alter_table('send_ledger', schema=None) as batch_op:
        batch_op.add_column(sa.Column('sent_at', sa.DateTime(), nullable=True))
    ledger = sa.table('send_ledger', sa.column('sent_at', sa.DateTime), sa.column('accepted_at', sa.DateTime))
    op.execute(ledger.update().values(sent_at=ledger.c.accepted_at))
    with op.batch_alter_table('send_ledger', schema=None) as batch_op:
        batch_op.drop_index('ix_ledger_state')
        batch_op.drop_column('settled_at')
        batch_op.drop_column('provider_message_id')
        batch_op.drop_column('accepted_on')
        batch_op.drop_column('accepted_at')
        batch_op.drop_column('backend')
        batch_op.drop_column('attempt_run_date')
        batch_op.drop_column('attempted_at')

    with op.batch_alter_table('delivery_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_delivery_events_message_id'))

    op.drop_table('delivery_events')
