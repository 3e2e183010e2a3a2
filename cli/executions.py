"""`dynavera executions list|show`: an Execution (DESIGN §3) as a terminal shows it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

QUERY_CHARS = 60


def seconds_between(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


def _duration(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.1f}s"


def _query(execution: dict[str, Any]) -> str:
    query = str((execution.get("input_data") or {}).get("query", ""))
    return query if len(query) <= QUERY_CHARS else query[: QUERY_CHARS - 1] + "…"


def line(execution: dict[str, Any]) -> str:
    """One row of a list: id, status, how long it ran (or has waited), when, the question."""
    took = seconds_between(execution.get("started_at") or execution.get("created_at"), execution.get("completed_at"))
    return (
        f"{execution['execution_id']}  {execution['status']:<9}  {_duration(took):>7}  "
        f"{execution.get('created_at', '')}  {_query(execution)}"
    )


def details(execution: dict[str, Any]) -> str:
    """Status, question, answer, sources and timings of one execution."""
    created, started, completed = (execution.get(k) for k in ("created_at", "started_at", "completed_at"))
    rows = [
        f"execution  {execution['execution_id']}",
        f"agent      {execution.get('agent_id')}",
        f"status     {execution['status']}",
        f"query      {(execution.get('input_data') or {}).get('query', '')}",
        f"created    {created}",
        f"started    {started or '-'}  (waited {_duration(seconds_between(created, started))})",
        f"ended      {completed or '-'}  (ran {_duration(seconds_between(started, completed))})",
    ]
    if execution.get("error_message"):
        rows.append(f"error      {execution['error_message']}")
    output = execution.get("output_data") or {}
    if output:
        rows += ["", output.get("answer", "")]
        sources = output.get("sources", [])
        if sources:
            rows.append("\nSources:")
            rows += [
                f"  [{n}] {s.get('source')} (chunk {s.get('chunk_id')}, score {s.get('score', 0):.2f})"
                for n, s in enumerate(sources, 1)
            ]
    return "\n".join(rows)
