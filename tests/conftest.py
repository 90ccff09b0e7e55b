"""Test configuration.

The whole test session runs against one fresh database built by the Alembic migrations (never
create_all): SQLite in a temporary folder by default, or the PostgreSQL database named by
ONESTOP_TEST_DATABASE_URL (its public schema is dropped and recreated first). Redis is used
when ONESTOP_TEST_REDIS_URL is set, and that Redis database is emptied first too: what an earlier
run left there (cached certificate statuses, rate-limit counters, revoked token ids) names rows of
a database that no longer exists, and a fresh database issues the same certificate identifiers
again.

Settings are read from the environment once, so the environment is set here, at import, before
any project module reads it. The shipped fake WeChat server runs as a real HTTP server on a
free loopback port for the whole session.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

VAR_DIR = Path(tempfile.mkdtemp(prefix="onestop-test-"))
DATABASE_URL = os.environ.get("ONESTOP_TEST_DATABASE_URL") or f"sqlite:///{VAR_DIR / 'test.db'}"

os.environ.update({
    "ONESTOP_VAR_DIR": str(VAR_DIR),
    "ONESTOP_DATABASE_URL": DATABASE_URL,
    "ONESTOP_DEMO": "true",
    "ONESTOP_RUN_WORKER_IN_SERVER": "false",
    "ONESTOP_LOG_LEVEL": "INFO",
    "ONESTOP_PUBLIC_BASE_URL": "http://testserver",
})
if os.environ.get("ONESTOP_TEST_REDIS_URL"):
    os.environ["ONESTOP_REDIS_URL"] = os.environ["ONESTOP_TEST_REDIS_URL"]
else:
    os.environ.pop("ONESTOP_REDIS_URL", None)

_fake_wechat_stop = None


def pytest_configure(config) -> None:
    global _fake_wechat_stop
    if os.environ.get("ONESTOP_TEST_REDIS_URL"):
        import redis

        with redis.Redis.from_url(os.environ["ONESTOP_TEST_REDIS_URL"]) as client:
            client.flushdb()
    from services.wechat.fake_server import create_fake_wechat_app, serve_in_thread

    app = create_fake_wechat_app(appid="wxdemo0000000000", secret="demo-secret")
    base_url, _fake_wechat_stop = serve_in_thread(app)
    os.environ["ONESTOP_WECHAT_BASE_URL"] = base_url
    config.fake_wechat_app = app


def pytest_unconfigure(config) -> None:
    if _fake_wechat_stop is not None:
        _fake_wechat_stop()
    shutil.rmtree(VAR_DIR, ignore_errors=True)


def _reset_postgres(url: str) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.execute(sa.text("DROP SCHEMA IF EXISTS public CASCADE"))
        connection.execute(sa.text("CREATE SCHEMA public"))
    engine.dispose()


@pytest.fixture(scope="session")
def database_url() -> str:
    """The session's freshly migrated database."""
    from services.migrate import upgrade_to_head

    if DATABASE_URL.startswith("postgresql"):
        _reset_postgres(DATABASE_URL)
    upgrade_to_head(DATABASE_URL)
    return DATABASE_URL


@pytest.fixture(scope="session")
def test_var_dir() -> Path:
    return VAR_DIR


@pytest.fixture(scope="session")
def engine(database_url: str):
    from services.db import get_engine

    return get_engine()


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


@pytest.fixture(scope="session")
def fake_wechat(pytestconfig):
    """The fake WeChat server's state (issued codes, sent messages, tokens)."""
    return pytestconfig.fake_wechat_app.state.fake


@pytest.fixture(scope="session")
def seeded(database_url):
    """The demo county, committed once for the session."""
    from services.db import session_scope
    from services.demo.seed import seed_demo

    with session_scope() as session:
        seed_demo(session)
    return True


@pytest.fixture(scope="session")
def client(seeded):
    """The app without its in-process worker: tests run jobs with tests.support.run_jobs."""
    from fastapi.testclient import TestClient

    from api.app import create_app

    with TestClient(create_app(start_worker=False), raise_server_exceptions=False) as test_client:
        yield test_client
