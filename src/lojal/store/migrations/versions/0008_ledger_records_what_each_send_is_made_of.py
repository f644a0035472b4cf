"""ledger records what each send is made of

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30 18:19:33.392054

Four nullable columns on send_ledger (variant, send_at, offer_code, made_from): existing rows keep
every value and read as made before the record existed.
"""
from alembic import op
import sqlalchemy as sa


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('send_ledger', schema=None) as batch_op:
        batch_op.add_column(sa.Column('variant', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('send_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('offer_code', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('made_from', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('send_ledger', schema=None) as batch_op:
        batch_op.drop_column('made_from')
        batch_op.drop_column('offer_code')
        batch_op.drop_column('send_at')
        batch_op.drop_column('variant')
