"""Rate limiting shared by every process: Redis when configured, in-process otherwise.

`enforce(name, identity)` counts one request of `identity` (an address, a principal) against
the named limit and raises `RateLimited` (429 with Retry-After) when it is over. Identities are
never stored in clear: keys carry a keyed hash (see `keys.limit_key`). The FastAPI dependency
factory is `api.limits.rate_limited` (services never import FastAPI).
"""

from services.ratelimit.keys import address_identity
from services.ratelimit.limiter import (Decision, InProcessBackend, RateLimited, RateLimiter, RedisBackend,
                                        enforce, enforce_async, get_limiter, limits_enabled, reset_limiter)
from services.ratelimit.settings import Rate, get_rate_limit_settings, parse_rate

__all__ = ["Decision", "address_identity", "InProcessBackend", "Rate", "RateLimited", "RateLimiter", "RedisBackend", "enforce",
           "enforce_async", "get_limiter", "get_rate_limit_settings", "limits_enabled", "parse_rate", "reset_limiter"]
