"""The bare baseline (BENCHMARKS.md): FastAPI with the project's driver and pool settings
(`services.db.make_engine`), doing the least possible per request.

    GET  /hello        {"hello": "world"}, no database
    POST /rows         {"payload": "..."} -> one-row INSERT into bench_rows, 201 {"id": n}
    GET  /rows/{id}    one row by primary key, 404 if missing
    POST /wechat-code  {"code": "..."} -> the project's WeChat client exchanges it (jscode2session)
                       at ONESTOP_WECHAT_BASE_URL, 200 {"ok": true}: the least a WeChat sign-in
                       does before it touches the database (the floor of POST /auth/wechat-login)

Sync `def` routes like the project's (FastAPI runs them in its thread pool). The table
`bench_rows(id, payload)` is the baseline's own, not project schema: created here at start-up,
with PRELOAD_ROWS rows so that the select benchmark has ids 1..PRELOAD_ROWS to read.

    BENCH_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/onestop_bench \
        uvicorn tests.bench.baseline_app:app --workers 1 --log-level warning
"""

from __future__ import annotations

import os
from contextlib import asynccontextmanager

from fastapi import FastAPI, HTTPException, status
from pydantic import BaseModel, Field
from sqlalchemy import text

from services.db import is_sqlite, make_engine

PRELOAD_ROWS = 10_000


def database_url() -> str:
    url = os.environ.get("BENCH_DATABASE_URL") or os.environ.get("ONESTOP_DATABASE_URL")
    if not url:
        raise RuntimeError("set BENCH_DATABASE_URL (or ONESTOP_DATABASE_URL) for the baseline app")
    return url


engine = make_engine(database_url())


def create_table() -> None:
    id_column = "INTEGER PRIMARY KEY AUTOINCREMENT" if is_sqlite(str(engine.url)) else "SERIAL PRIMARY KEY"
    with engine.begin() as connection:
        connection.execute(text(f"CREATE TABLE IF NOT EXISTS bench_rows (id {id_column}, payload TEXT NOT NULL)"))
        present = connection.execute(text("SELECT COUNT(*) FROM bench_rows")).scalar_one()
        if present < PRELOAD_ROWS:
            connection.execute(text("INSERT INTO bench_rows (payload) VALUES (:payload)"),
                               [{"payload": f"preloaded row {n}"} for n in range(present, PRELOAD_ROWS)])


@asynccontextmanager
async def lifespan(_app: FastAPI):
    create_table()
    yield
    engine.dispose()


app = FastAPI(title="onestop bench baseline", lifespan=lifespan, docs_url=None, redoc_url=None)


class WeChatCode(BaseModel):
    code: str = Field(min_length=1, max_length=128)


class NewRow(BaseModel):
    payload: str = Field(max_length=1000)


@app.get("/hello")
def hello() -> dict[str, str]:
    return {"hello": "world"}


@app.post("/rows", status_code=status.HTTP_201_CREATED)
def insert_row(body: NewRow) -> dict[str, int]:
    with engine.begin() as connection:
        row_id = connection.execute(text("INSERT INTO bench_rows (payload) VALUES (:payload) RETURNING id"),
                                    {"payload": body.payload}).scalar_one()
    return {"id": row_id}


@app.get("/rows/{row_id}")
def select_row(row_id: int) -> dict[str, int | str]:
    with engine.connect() as connection:
        row = connection.execute(text("SELECT id, payload FROM bench_rows WHERE id = :id"), {"id": row_id}).first()
    if row is None:
        raise HTTPException(status_code=404, detail="no such row")
    return {"id": row.id, "payload": row.payload}


@app.post("/wechat-code")
def exchange_wechat_code(body: WeChatCode) -> dict[str, bool]:
    from services.wechat.client import get_wechat_client  # configured from the environment, like the project's

    get_wechat_client().code_to_session(body.code)
    return {"ok": True}
