"""`dynavera ask` and `dynavera executions follow`: a run over the WebSocket, its answer printed
as it grows.

A dropped connection is reopened and resumed with `subscribe` after the last seq seen, and
frames with a seq already seen are dropped, so nothing is missed or printed twice.
"""

from __future__ import annotations

import json
import sys
import uuid
from typing import Any

from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

TERMINAL = {"execution_completed", "execution_error", "execution_stopped"}


def ask_over_websocket(
    url: str, key: str, agent_id: str, question: str, overrides: dict[str, Any] | None = None, as_json: bool = False
) -> int:
    """Start a run (with this run's own settings, when given) and print it to its end."""
    first = {
        "action": "start_agent",
        "agent_id": agent_id,
        "input_data": {"query": question},
        "request_id": str(uuid.uuid4()),
    }
    if overrides:
        first["config"] = overrides
    return _stream(url, key, first, None, 0, as_json)


def follow_over_websocket(url: str, key: str, execution_id: str, as_json: bool = False) -> int:
    """Join a run, live or finished: its events from the first, then live ones to its end."""
    return _stream(url, key, None, execution_id, 0, as_json)


def _stream(
    url: str, key: str, first: dict[str, Any] | None, execution_id: str | None, last_seq: int, as_json: bool
) -> int:
    """Send `first` (or subscribe to `execution_id`), print the frames to the terminal one, and
    resume after the last seq seen when the connection drops."""
    for _attempt in range(5):
        try:
            with connect(f"{url}?token={key}", open_timeout=10, max_size=2**20) as ws:
                if execution_id is None and first is not None:
                    ws.send(json.dumps(first))
                else:
                    ws.send(json.dumps({"action": "subscribe", "execution_id": execution_id, "after": last_seq}))
                for raw in ws:
                    frame = json.loads(raw)
                    if as_json:
                        print(json.dumps(frame), flush=True)
                    seq = frame.get("seq")
                    if isinstance(seq, int):
                        if seq <= last_seq:
                            continue
                        last_seq = seq
                    kind = frame.get("type")
                    if kind == "execution_started":
                        execution_id = frame["execution_id"]
                    elif kind == "error":
                        print(f"\nerror: {frame.get('code')}: {frame.get('message')}", file=sys.stderr)
                        return 1
                    elif not as_json:
                        _print_frame(frame)
                    if kind in TERMINAL:
                        return 0 if kind == "execution_completed" else 1
        except InvalidStatus as err:
            print(
                f"error: the WebSocket refused the connection ({err.response.status_code}); check the API key.",
                file=sys.stderr,
            )
            return 1
        except (ConnectionClosed, OSError) as err:
            if execution_id is None:
                print(f"error: cannot reach {url}: {err}. Is 'make run' running?", file=sys.stderr)
                return 1
    print("error: the connection kept dropping; see the run with GET /executions/" + str(execution_id), file=sys.stderr)
    return 1


def _print_frame(frame: dict[str, Any]) -> None:
    kind = frame.get("type")
    if kind == "agent_event":
        content = frame.get("content", {})
        if frame.get("event_type") == "token":
            print(content.get("text", ""), end="", flush=True)
        elif frame.get("event_type") == "progress":
            print(f"[{content.get('stage')}] {content.get('message')}", file=sys.stderr, flush=True)
    elif kind == "execution_completed":
        print()
        sources = frame.get("output_data", {}).get("sources", [])
        if sources:
            print("\nSources:")
            for n, source in enumerate(sources, 1):
                where = f"chunk {source.get('chunk_id')}, score {source.get('score', 0):.2f}"
                print(f"  [{n}] {source.get('source')} ({where})")
    elif kind == "execution_error":
        print(f"\nerror: {frame.get('error')}", file=sys.stderr)
    elif kind == "execution_stopped":
        print("\n(stopped)", file=sys.stderr)
