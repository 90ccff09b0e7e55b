"""Test configuration.

Every test session gets a fresh database built by the Alembic migrations (never create_all):
SQLite in a temporary folder by default, or the PostgreSQL database named by
ONESTOP_TEST_DATABASE_URL (its public schema is dropped and recreated first).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

_TMP_VAR = Path(os.environ.get("ONESTOP_TEST_VAR_DIR", "")) if os.environ.get("ONESTOP_TEST_VAR_DIR") else None


def _reset_postgres(url: str) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.execute(sa.text("DROP SCHEMA IF EXISTS public CASCADE"))
        connection.execute(sa.text("CREATE SCHEMA public"))
    engine.dispose()


@pytest.fixture(scope="session")
def test_var_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("var")


@pytest.fixture(scope="session")
def database_url(test_var_dir: Path) -> str:
    """A freshly migrated database for this test session."""
    from services.migrate import upgrade_to_head

    url = os.environ.get("ONESTOP_TEST_DATABASE_URL") or f"sqlite:///{test_var_dir / 'test.db'}"
    if url.startswith("postgresql"):
        _reset_postgres(url)
    upgrade_to_head(url)
    return url


@pytest.fixture(scope="session")
def engine(database_url: str):
    from services.db import make_engine

    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def session(engine):
    """A session whose work is rolled back after the test."""
    from sqlmodel import Session

    connection = engine.connect()
    transaction = connection.begin()
    session = Session(bind=connection, join_transaction_mode="create_savepoint")
    yield session
    session.close()
    transaction.rollback()
    connection.close()
