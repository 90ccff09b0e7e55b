"""Routes marked `reads_only` run their statements without a transaction on PostgreSQL (no BEGIN
and COMMIT round trips), and so does an action, whose change is one statement unless it changes
rows other than the case's; every other route still runs in one. SQLite keeps its transactions."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import event

from services.db import without_transactions

from tests.api.test_cases_lifecycle import CLERK, new_case
from tests.services.cases.helpers import staff
from tests.support import act, auth, residence_application, submit, upload_pdf, verified_citizen


@pytest.fixture
def statements(engine):
    """(autocommit, SQL) of each statement the app's requests run while the test records, on the
    main engine and on the reads' own (a pool of its own on PostgreSQL). The process's
    background threads (named onestop-…: the certificate check log's flusher, an outbox worker)
    write on their own schedule and are not the requests'."""
    seen: list[tuple[bool, str]] = []

    def note(connection, sql: str) -> None:
        if not threading.current_thread().name.startswith("onestop-"):
            seen.append((bool(getattr(connection.connection.dbapi_connection, "autocommit", False)), sql))

    def record(connection, _cursor, statement, *_):
        note(connection, statement)

    def commit(connection):  # a Session.commit, even one that sends nothing to the server
        note(connection, "COMMIT")

    engines = {engine, without_transactions(engine)}
    for each in engines:
        event.listen(each, "before_cursor_execute", record)
        event.listen(each, "commit", commit)
    yield seen
    for each in engines:
        event.remove(each, "before_cursor_execute", record)
        event.remove(each, "commit", commit)


def test_reads_keep_generic_plans(engine):
    """The reads' pool keeps a prepared statement's generic plan: PostgreSQL would otherwise
    re-plan the work-queue page on every request once a custom plan's estimate came out cheaper."""
    if engine.dialect.name == "sqlite":
        pytest.skip("PostgreSQL's plan cache")
    with without_transactions(engine).connect() as connection:
        assert connection.exec_driver_sql("SHOW plan_cache_mode").scalar_one() == "force_generic_plan"
    with engine.connect() as connection:  # writes and everything else plan as PostgreSQL chooses
        assert connection.exec_driver_sql("SHOW plan_cache_mode").scalar_one() == "auto"
    # server options the database URL sets stay in force on the reads' connections
    from sqlalchemy import create_engine

    with_options = create_engine(engine.url.update_query_dict({"options": "-c statement_timeout=12345"}))
    with without_transactions(with_options).connect() as connection:
        assert connection.exec_driver_sql("SHOW plan_cache_mode").scalar_one() == "force_generic_plan"
        assert connection.exec_driver_sql("SHOW statement_timeout").scalar_one() == "12345ms"
    without_transactions(with_options).dispose()
    with_options.dispose()


def test_case_reads_and_an_action_on_the_case_alone_run_without_a_transaction(client, engine, statements):
    if engine.dialect.name == "sqlite":
        pytest.skip("SQLite keeps its transactions: its engine emits its own BEGIN IMMEDIATE")
    citizen, case = new_case(client)
    clerk = staff(client, CLERK)
    statements.clear()
    for path in (f"/api/v1/cases/{case['id']}", f"/api/v1/cases/{case['id']}/actions", "/api/v1/cases"):
        for token in (citizen, clerk):
            assert client.get(path, headers=auth(token)).status_code == 200
    reads = list(statements)
    assert reads and all(autocommit for autocommit, _ in reads), reads
    assert "COMMIT" not in [sql for _, sql in reads], reads  # nor the work (and thread hop) of a commit

    # the action's read, then its one write statement (sent through psycopg: not recorded here, but
    # on the same connection) — nothing on the main engine, whose statements run in transactions
    statements.clear()
    accepted = act(client, clerk, case, "accept")
    assert accepted.status_code == 200, accepted.text
    assert statements and all(autocommit for autocommit, _ in statements), statements
    assert "COMMIT" not in [sql for _, sql in statements], statements
    # and the read after it sees what the action committed: the case, its event and its notice
    seen = client.get(f"/api/v1/cases/{case['id']}", headers=auth(citizen)).json()
    assert seen["state"] == "accepted" and [e["action"] for e in seen["history"]] == ["submit", "accept"]


def test_an_action_that_changes_other_rows_runs_in_a_transaction(client, engine, statements):
    if engine.dialect.name == "sqlite":
        pytest.skip("SQLite keeps its transactions: its engine emits its own BEGIN IMMEDIATE")
    citizen, case = new_case(client)
    clerk = staff(client, CLERK)
    case = act(client, clerk, case, "request_correction", comment="请补正",
               payload={"items": [{"material_code": "id-card", "problem": "模糊"}]}).json()
    new_file = upload_pdf(client, citizen)
    statements.clear()
    supplemented = act(client, citizen, case, "supplement", payload={"materials": [{"code": "id-card", "file_id": new_file}]})
    assert supplemented.status_code == 200, supplemented.text
    written = [sql for autocommit, sql in statements if not autocommit]
    assert any(sql.startswith("DELETE FROM case_materials") for sql in written), statements
    assert written[-1] == "COMMIT", statements
    assert [m["file_id"] for m in supplemented.json()["materials"]] == [new_file]


def test_a_citizens_own_submission_runs_without_a_transaction(client, engine, statements):
    """Its reads, then the case with its materials, first event, idempotency record and the files
    it keeps as one statement (not recorded here: sent through psycopg)."""
    if engine.dialect.name == "sqlite":
        pytest.skip("SQLite keeps its transactions: its engine emits its own BEGIN IMMEDIATE")
    citizen, id_number = verified_citizen(client)
    body = residence_application(id_number, upload_pdf(client, citizen))
    statements.clear()
    answer = submit(client, citizen, body, key="own-submission")
    assert answer.status_code == 201, answer.text
    assert statements and all(autocommit for autocommit, _ in statements), statements
    assert "COMMIT" not in [sql for _, sql in statements], statements
    seen = client.get(f"/api/v1/cases/{answer.json()['id']}", headers=auth(citizen)).json()
    assert [m["file_id"] for m in seen["materials"]] == [m["file_id"] for m in body["materials"]]
    replayed = submit(client, citizen, body, key="own-submission")
    assert replayed.status_code == 201 and replayed.json()["id"] == answer.json()["id"]


def test_a_read_on_a_connection_the_server_dropped_is_run_again(client, engine):
    """The reads' pool lends connections without pinging them first: after a restart the first
    read on a dropped one fails inside SQLAlchemy, which discards the pool, and the read runs
    again on a fresh connection instead of answering 500."""
    if engine.dialect.name == "sqlite":
        pytest.skip("the reads' own pool is PostgreSQL's")
    from services.accounts import principal_cache

    citizen, case = new_case(client)
    path = f"/api/v1/cases/{case['id']}"
    # first the route's own read, then (the cached principal forgotten) the principal's load,
    # each the first statement on a connection the server has dropped
    for forget_principals in (False, True):
        assert client.get(path, headers=auth(citizen)).status_code == 200  # a pooled read connection exists
        _drop_idle_connections(engine)
        if forget_principals:
            principal_cache._cache.clear()
        answer = client.get(path, headers=auth(citizen))
        assert answer.status_code == 200, answer.text
        assert answer.json()["id"] == case["id"]


def test_a_returning_citizens_sign_in_runs_without_a_transaction(client, engine, statements):
    """Its account read, then both token records as one statement (sent through psycopg, not
    recorded here); the first sign-in, which creates the account, takes a transaction."""
    if engine.dialect.name == "sqlite":
        pytest.skip("SQLite keeps its transactions: its engine emits its own BEGIN IMMEDIATE")
    statements.clear()
    first = client.post("/api/v1/auth/wechat-login", json={"code": "demo-returning.1"})
    assert first.status_code == 200, first.text
    assert "COMMIT" in [sql for _, sql in statements], statements
    statements.clear()
    again = client.post("/api/v1/auth/wechat-login", json={"code": "demo-returning.2"})
    assert again.status_code == 200, again.text
    assert again.json()["user"]["id"] == first.json()["user"]["id"]
    assert statements and all(autocommit for autocommit, _ in statements), statements
    assert "COMMIT" not in [sql for _, sql in statements], statements
    for answer in (first, again):  # each token pair was written: the refresh token works once
        refreshed = client.post("/api/v1/auth/refresh", json={"refresh_token": answer.json()["refresh_token"]})
        assert refreshed.status_code == 200, refreshed.text
        assert client.get("/api/v1/me", headers=auth(answer.json()["access_token"])).status_code == 200


def _drop_idle_connections(engine) -> None:
    """What a restart of the server does to the pools' idle connections."""
    from sqlalchemy import text

    with engine.connect() as admin:
        ended = admin.execute(text(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid() AND state = 'idle'")).scalar_one()
    assert ended >= 1


def test_writes_on_a_connection_the_server_dropped_are_run_again(client, engine):
    """A submission, an action and a sign-in whose first statement finds its pooled connection
    dropped run again on a fresh one (nothing was written yet) instead of answering 500. The
    sign-in retries its first read itself: the WeChat code it spent before cannot be spent twice."""
    if engine.dialect.name == "sqlite":
        pytest.skip("the statement sessions' own pool is PostgreSQL's")
    citizen, id_number = verified_citizen(client)
    clerk = staff(client, CLERK)
    first = submit(client, citizen, residence_application(id_number, upload_pdf(client, citizen)), key="drop-1")
    assert first.status_code == 201, first.text
    assert client.post("/api/v1/auth/wechat-login", json={"code": "demo-dropped.1"}).status_code == 200

    _drop_idle_connections(engine)
    second = submit(client, citizen, residence_application(id_number, upload_pdf(client, citizen)), key="drop-2")
    assert second.status_code == 201, second.text
    _drop_idle_connections(engine)
    accepted = act(client, clerk, first.json(), "accept")
    assert accepted.status_code == 200, accepted.text
    _drop_idle_connections(engine)
    signed_in = client.post("/api/v1/auth/wechat-login", json={"code": "demo-dropped.2"})
    assert signed_in.status_code == 200, signed_in.text
    mine = client.get("/api/v1/cases", headers=auth(citizen)).json()["items"]
    assert {first.json()["id"], second.json()["id"]} <= {case["id"] for case in mine}
    assert [e["action"] for e in client.get(f"/api/v1/cases/{first.json()['id']}",
                                            headers=auth(citizen)).json()["history"]] == ["submit", "accept"]
