"""Timestamps and ids in the contract's shapes: ISO 8601 UTC strings and UUID4s."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime


def now() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    # Fixed width, so that the strings sort in time order inside DynamoDB range keys.
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def now_iso() -> str:
    return iso(now())


def new_id() -> str:
    return str(uuid.uuid4())
