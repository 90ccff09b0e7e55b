"""Redis for the public certificate endpoints: the status cache.

Only when `ONESTOP_REDIS_URL` is set. Keys hold no holder data, and not even the identifier in
clear: `onestop:cert:status:<h>` and `onestop:cert:gen:<h>` with h = SHA-256(identifier)[:32].

Correct immediately after a status change, without trusting TTLs:

- a writer, after its transaction commits, INCRs the certificate's generation key and DELetes
  its cached answer (services.certificates.service registers an after_commit hook);
- a reader that misses reads the generation *before* it reads the database, and stores its
  answer only if the generation is still the one it read (a Lua script, atomic in Redis).

Any interleaving then ends with no stale answer in the cache: a SET that happens before the
writer's DEL is deleted; one that happens after the writer's INCR is refused.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

# the shared clients; the async one named here so a test can replace it for the status endpoint alone
from services.ratelimit.connection import ASYNC_TIMEOUT_SECONDS, async_redis_client as async_client  # noqa: F401
from services.ratelimit.connection import redis_client

log = logging.getLogger("onestop.certificates.cache")

PREFIX = "onestop:cert"
GENERATION_TTL = 24 * 3600  # far longer than any request; renewed on every change

_SET_IF_GENERATION = """
local current = redis.call('GET', KEYS[2])
if (current == false and ARGV[2] == '') or current == ARGV[2] then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', tonumber(ARGV[3]))
  return 1
end
return 0
"""


def key_hash(identifier: str) -> str:
    return hashlib.sha256(identifier.encode("utf-8")).hexdigest()[:32]


def status_key(identifier: str) -> str:
    return f"{PREFIX}:status:{key_hash(identifier)}"


def generation_key(identifier: str) -> str:
    return f"{PREFIX}:gen:{key_hash(identifier)}"


# ---------------------------------------------------------------------------------------------
# Status cache


def invalidate_status(identifiers) -> None:
    """After a commit that changed these certificates: bump each generation, drop each answer.
    Never raises (a Redis outage must not fail a committed change); logs instead."""
    client = redis_client()
    if client is None:
        return
    try:
        pipeline = client.pipeline(transaction=False)
        for identifier in identifiers:
            pipeline.incr(generation_key(identifier))
            pipeline.expire(generation_key(identifier), GENERATION_TTL)
            pipeline.delete(status_key(identifier))
        pipeline.execute()
    except Exception:  # noqa: BLE001 - the change is committed; the cache entry expires anyway
        log.exception("could not invalidate cached certificate status", extra={"count": len(list(identifiers))})


_set_scripts: dict[int, Any] = {}


async def store_if_generation(client, identifier: str, value: bytes, *, generation: bytes | None,
                              ttl_seconds: int) -> bool:
    """Cache `value` unless the certificate changed since `generation` was read (EVALSHA of a
    registered script: the script's text is not sent every time)."""
    script = _set_scripts.get(id(client))
    if script is None:
        script = _set_scripts[id(client)] = client.register_script(_SET_IF_GENERATION)
    stored = await script(keys=[status_key(identifier), generation_key(identifier)],
                          args=[value, (generation or b"").decode(), max(1, int(ttl_seconds))])
    return bool(stored)


def encode_entry(certificate_id: str, status: str, body: bytes) -> bytes:
    return certificate_id.encode() + b"\n" + status.encode() + b"\n" + body


def decode_entry(entry: bytes) -> tuple[str, str, bytes]:
    certificate_id, status, body = entry.split(b"\n", 2)
    return certificate_id.decode(), status.decode(), body
