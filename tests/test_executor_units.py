"""Unit edges of the executor and fan-out: token coalescing and bounded frames."""

from __future__ import annotations

import pytest

from chalicelib import executor
from chalicelib.fanout import EXCERPT_CHARS, frame_for
from chalicelib.models import Event


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(executor.time, "monotonic", fake)
    return fake


def coalesce(clock: FakeClock, tokens: list[str], seconds_apart: float, max_tokens: int = 200) -> list[str]:
    coalescer = executor.TokenCoalescer(max_tokens)
    pieces = []
    for token in tokens:
        piece = coalescer.add(token)
        if piece:
            pieces.append(piece)
        clock.now += seconds_apart
    rest = coalescer.drain()
    return pieces + ([rest] if rest else [])


def test_first_token_is_written_at_once(clock: FakeClock) -> None:
    coalescer = executor.TokenCoalescer(200)
    assert coalescer.add("Hello") == "Hello"
    assert coalescer.add(" world") is None


@pytest.mark.parametrize("seconds_apart", [0.0, 0.015, 0.1])
def test_a_200_token_answer_is_a_handful_of_writes_and_loses_nothing(clock: FakeClock, seconds_apart: float) -> None:
    tokens = [f"t{i} " for i in range(200)]
    pieces = coalesce(clock, tokens, seconds_apart)  # from instant to 20 s of generation
    assert "".join(pieces) == "".join(tokens)
    assert len(pieces) <= 8


def test_a_stalled_stream_still_shows_progress(clock: FakeClock) -> None:
    coalescer = executor.TokenCoalescer(2048)
    assert coalescer.add("first") == "first"
    assert coalescer.add(" slow") is None
    clock.now += 5.5
    assert coalescer.add(" token") == " slow token"


def test_fast_tokens_are_bounded_by_size(clock: FakeClock) -> None:
    tokens = ["x" * 100] * 100
    pieces = coalesce(clock, tokens, seconds_apart=0.0, max_tokens=2048)
    assert "".join(pieces) == "".join(tokens)
    assert max(len(p) for p in pieces) <= executor.TokenCoalescer(2048).max_chars + 100


def test_completion_frame_bounds_source_excerpts() -> None:
    output = {
        "answer": "a",
        "sources": [{"source": "s.md", "chunk_id": "c", "score": 0.5, "text": "y" * 10_000}],
        "usage": {},
    }
    event = Event("e", 7, event_type="completed", content=output, timestamp="2026-01-01T00:00:00.000000Z")
    frame = frame_for(event)
    assert frame["type"] == "execution_completed" and frame["seq"] == 7
    assert len(frame["output_data"]["sources"][0]["text"]) == EXCERPT_CHARS
    assert output["sources"][0]["text"] == "y" * 10_000


def test_event_frames_carry_seq_and_type() -> None:
    token = Event("e", 3, event_type="token", content={"text": "hi"}, timestamp="t")
    assert frame_for(token) == {
        "type": "agent_event",
        "execution_id": "e",
        "seq": 3,
        "event_type": "token",
        "content": {"text": "hi"},
        "timestamp": "t",
    }
    error = Event("e", 4, event_type="error", content={"message": "boom"}, timestamp="t")
    assert frame_for(error) == {"type": "execution_error", "execution_id": "e", "seq": 4, "error": "boom"}
    stopped = Event("e", 5, event_type="stopped", content={}, timestamp="t")
    assert frame_for(stopped) == {"type": "execution_stopped", "execution_id": "e", "seq": 5}


@pytest.mark.parametrize("line", ["not json", "[1]", '"text"', '{"type": "token"'])
def test_a_malformed_runtime_line_is_a_runtime_failure(line: str) -> None:
    from chalicelib import runtime_client

    with pytest.raises(runtime_client.RuntimeFailure, match="malformed"):
        runtime_client._event(line)
