"""ledger index for a campaign's attempts per night

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30 22:47:50.456721

An index only: every row is kept. `ledger.night_tally` (each batch's error-rate pause) reads a
campaign's attempts tonight; without it that was a scan of the whole ledger per batch.
"""
from alembic import op
import sqlalchemy as sa


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('send_ledger', schema=None) as batch_op:
        batch_op.create_index('ix_ledger_attempt', ['campaign_id', 'attempt_run_date'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('send_ledger', schema=None) as batch_op:
        batch_op.drop_index('ix_ledger_attempt')
