"""Per-user limits, in one place: what a real service would allow one user at once, each
overridable per stage with `DYNAVERA_LIMIT_<NAME>` (e.g. DYNAVERA_LIMIT_AGENTS=500).

The Lambda code (chalicelib.usage), the local gateway's request rate, the edge's rate rule
(deploy/edge.py) and `GET /limits` all read these numbers; the limits' names and codes are
the contract's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace

import contract

# Seconds a refused client is told to wait, by limit: a run ends within about a minute, a
# connection or a subscriber as soon as the client lets one go; the rest needs a delete.
RETRY_AFTER_SECONDS = {
    "runs_in_flight": 15,
    "connections": 30,
    "subscribers_per_execution": 30,
    "agents": 60,
    "collections": 60,
    "documents": 60,
    "keys": 60,
}
# The request-rate window at the edge: AWS WAF counts a rate-based rule over 60 s at its shortest.
RATE_WINDOW_SECONDS = 60
# The limits a user holds resources against (GET /limits), in the order they are reported.
PER_USER = contract.PER_USER_LIMITS


@dataclass(frozen=True)
class Limits:
    runs_in_flight: int = 100  # pending or running at once; more wait in the client, not in SQS
    connections: int = 20  # WebSocket connections open at once
    subscribers_per_execution: int = 10  # connections following one execution
    agents: int = 100
    collections: int = 20
    documents: int = 1000  # across all of the user's collections
    keys: int = 10  # API keys at once: the request rate is per key, so keys are few
    requests_per_window: int = 3000  # REST requests per API key per RATE_WINDOW_SECONDS (50/s)

    def with_overrides(self, overrides: Mapping[str, int]) -> Limits:
        """These limits with a stage's own (Settings.limit_overrides); a name no limit has is
        refused, naming its variable."""
        known = {spec.name for spec in fields(self)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            names = ", ".join(f"DYNAVERA_LIMIT_{name.upper()}" for name in unknown)
            raise ValueError(f"{names}: no such limit; the limits are {', '.join(sorted(known))}")
        return replace(self, **overrides)

    def of(self, name: str) -> int:
        return getattr(self, name)


def code(name: str) -> str:
    """The error code of a refusal at this limit."""
    return contract.limit_code(name)
