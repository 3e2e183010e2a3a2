"""API keys resolved to their user: stored only as their sha256, looked up by that hash.

A warm container remembers a key for a few seconds, not longer: a revoked key must be refused
on REST within 5 s, and every WebSocket frame re-checks the key its connection opened with.
"""

from __future__ import annotations

import hashlib
import time
from datetime import timedelta

from pynamodb.exceptions import DoesNotExist

from chalicelib.clock import iso, now, now_iso
from chalicelib.errors import Unauthorized
from chalicelib.models import ApiKey, conditional

KEY_PREFIX = "dv_"
CACHE_SECONDS = 3.0
# last_used_at is a day-to-day hint for the owner, written at most once a minute per key.
LAST_USED_EVERY = timedelta(minutes=1)
_cache: dict[str, tuple[str, float]] = {}


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def user_for_digest(key_hash: str) -> str:
    """The user of the key with this hash; Unauthorized once the key is revoked."""
    cached = _cache.get(key_hash)
    if cached and cached[1] > time.monotonic():
        return cached[0]
    try:
        row = ApiKey.get(key_hash)
    except DoesNotExist as err:
        raise Unauthorized("The API key is not valid.") from err
    if (row.last_used_at or "") < iso(now() - LAST_USED_EVERY):
        # Conditional: an update racing a revocation must not write the key back.
        with conditional(Unauthorized("The API key is not valid.")):
            row.update(actions=[ApiKey.last_used_at.set(now_iso())], condition=ApiKey.key_hash.exists())
    _cache[key_hash] = (row.user_id, time.monotonic() + CACHE_SECONDS)
    return row.user_id


def forget(key_hash: str) -> None:
    """Drop a revoked key from this container's memory at once (others forget it by expiry)."""
    _cache.pop(key_hash, None)


def user_for_key(key: str | None) -> str:
    if not key:
        raise Unauthorized("An API key is required.")
    return user_for_digest(digest(key))


def user_for_header(authorization: str | None) -> str:
    scheme, _, key = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise Unauthorized("Send 'Authorization: Bearer <api key>'.")
    return user_for_key(key.strip())
