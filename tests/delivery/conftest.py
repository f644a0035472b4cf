"""A store with only the schema, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from lojal.store import connect
from lojal.store.db import init_schema


@pytest.fixture
def engine(database_url):
    engine = connect(database_url)
    init_schema(engine)
    yield engine
    engine.dispose()
