"""The log of public checks (every status query and every uploaded verification): identifier,
time, answer, keyed hash of the client address.

A status check must cost a small fraction of a database write, so rows are buffered in the
process and written in batches (one multi-row INSERT) by a background thread every
`ONESTOP_CHECK_LOG_FLUSH_SECONDS`, and at exit. A process that dies loses at most that
interval of log rows, never a certificate's state. `flush(session)` writes the buffer inside a
caller's transaction (the usage endpoint does, so a check a moment ago is listed).
"""

from __future__ import annotations

import atexit
import hashlib
import hmac
import logging
import threading
import time
from collections import deque
from functools import lru_cache
from typing import Any

from sqlalchemy import insert

from services.certificates.models import CertificatePublicCheck
from services.db import utcnow

log = logging.getLogger("onestop.certificates.checklog")

MAX_BUFFERED = 200_000  # if the database is away for long, keep the newest rows only

# Rows are tuples in COLUMNS order, of strings and a datetime: the garbage collector stops
# tracking such a tuple at its first pass, so a second's worth of buffered checks never piles up
# in the oldest generation (which a full collection, a stalled event loop, would then walk).
_buffer: deque[tuple[Any, ...]] = deque(maxlen=MAX_BUFFERED)
_lock = threading.Lock()
_flush_lock = threading.Lock()
_thread: threading.Thread | None = None
_stop = threading.Event()


@lru_cache
def _client_key() -> bytes:
    from services.config import get_settings
    from services.keys import load_or_create_secret

    settings = get_settings()
    return load_or_create_secret(settings, configured=settings.pii_hash_key, filename="pii-hash.key", size=32)


@lru_cache(maxsize=8192)
def client_hash(address: str | None) -> str:
    """Keyed hash (HMAC-SHA256, its own domain) of a client address: what the log keeps of the
    client, never the address."""
    message = b"onestop/client-address/v1\x00" + (address or "unknown").encode("utf-8")
    return hmac.new(_client_key(), message, hashlib.sha256).hexdigest()


def record(*, kind: str, identifier: str | None, certificate_id: str | None, result: str, client: str) -> None:
    """Buffer one check (cheap: an append)."""
    _buffer.append((kind, identifier[:120] if identifier else None, certificate_id, result[:32], client, utcnow()))
    if _thread is None:
        _start()


def pending() -> int:
    return len(_buffer)


def _take() -> list[tuple[Any, ...]]:
    rows = []
    while True:
        try:
            rows.append(_buffer.popleft())
        except IndexError:
            return rows


def flush(session=None) -> int:
    """Write the buffered rows; with `session`, inside its transaction (the caller commits),
    else in a transaction of our own. Returns how many rows were written."""
    with _flush_lock:
        rows = _take()
        if not rows:
            return 0
        try:
            if session is not None:
                _write(session.connection(), rows)
            else:
                from services.db import get_engine

                with get_engine().begin() as connection:
                    _write(connection, rows)
        except Exception:
            _buffer.extendleft(reversed(rows))  # try again next time
            raise
        return len(rows)


YIELD_EVERY = 100
COLUMNS = ("kind", "identifier", "certificate_id", "result", "client_hash", "created_at")


def _write(connection, rows: list[tuple[Any, ...]]) -> None:
    """One COPY on PostgreSQL (an executemany of 1,500 rows costs ~90 ms of CPU, COPY a few),
    a multi-row INSERT elsewhere."""
    if connection.dialect.name == "postgresql":
        driver = connection.connection.driver_connection
        with driver.cursor() as cursor:
            with cursor.copy(f"COPY {CertificatePublicCheck.__tablename__} ({', '.join(COLUMNS)}) FROM STDIN") as copy:
                for index, row in enumerate(rows, start=1):
                    copy.write_row(row)
                    if index % YIELD_EVERY == 0:
                        time.sleep(0)  # let the server's event loop have the GIL: no request waits long
    else:
        connection.execute(insert(CertificatePublicCheck), [dict(zip(COLUMNS, row)) for row in rows])


def _run(interval: float) -> None:
    while not _stop.wait(interval):
        try:
            flush()
        except Exception:  # noqa: BLE001 - keep the flusher alive; the rows stay buffered
            log.warning("could not write the public check log; will retry", exc_info=True)


def _start() -> None:
    global _thread
    with _lock:
        if _thread is not None:
            return
        from services.certificates.settings import get_certificate_settings

        interval = get_certificate_settings().check_log_flush_seconds
        _thread = threading.Thread(target=_run, args=(interval,), name="onestop-checklog", daemon=True)
        _thread.start()


@atexit.register
def _flush_at_exit() -> None:
    _stop.set()
    try:
        flush()
    except Exception:  # noqa: BLE001 - the database may be gone at exit
        pass
