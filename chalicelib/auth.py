"""API keys: created for a user, stored only as their sha256, resolved back to the user."""

from __future__ import annotations

import hashlib
import secrets
import time

from pynamodb.exceptions import DoesNotExist

from chalicelib.clock import now_iso
from chalicelib.errors import Unauthorized
from chalicelib.models import ApiKey

KEY_PREFIX = "dv_"
_CACHE_SECONDS = 60.0
# A warm container resolves a key once a minute, not once a request.
_cache: dict[str, tuple[str, float]] = {}


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_api_key(user_id: str) -> str:
    if not user_id or len(user_id) > 128:
        raise ValueError("A user id is 1-128 characters.")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    ApiKey(_digest(key), user_id=user_id, created_at=now_iso()).save()
    return key


def user_for_key(key: str | None) -> str:
    if not key:
        raise Unauthorized("An API key is required.")
    digest = _digest(key)
    cached = _cache.get(digest)
    if cached and cached[1] > time.monotonic():
        return cached[0]
    try:
        user_id = ApiKey.get(digest).user_id
    except DoesNotExist as err:
        raise Unauthorized("The API key is not valid.") from err
    _cache[digest] = (user_id, time.monotonic() + _CACHE_SECONDS)
    return user_id


def user_for_header(authorization: str | None) -> str:
    scheme, _, key = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise Unauthorized("Send 'Authorization: Bearer <api key>'.")
    return user_for_key(key.strip())
