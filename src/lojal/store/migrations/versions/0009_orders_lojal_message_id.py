"""orders.lojal_message_id: the e-mail an order came from, when the shop passes it through

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30 18:25:00

A nullable column: every existing order keeps its row and gets NULL (attributed by last click).
"""
from alembic import op
import sqlalchemy as sa


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.add_column(sa.Column('lojal_message_id', sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.drop_column('lojal_message_id')
