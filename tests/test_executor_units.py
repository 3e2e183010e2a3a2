"""Unit edges of the executor and delivery: token coalescing and bounded frames."""

from __future__ import annotations

import itertools

import pytest

from chalicelib import executor
from chalicelib.delivery import EXCERPT_CHARS, frame_for
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


def coalesce(clock: FakeClock, tokens: list[str], seconds_apart: float) -> list[tuple[float, str]]:
    """Feed tokens `seconds_apart`, writing what is due as the executor's loop does (on a token,
    or when the wait for the next one passes the frame's deadline); the writes with their times."""
    coalescer = executor.TokenCoalescer()
    writes = []
    for token in tokens:
        piece = coalescer.add(token)
        if piece:
            writes.append((clock.now, piece))
        due = coalescer.due_in()
        if due is not None and due < seconds_apart:
            clock.now += due
            writes.append((clock.now, coalescer.drain()))
            clock.now += seconds_apart - due
        else:
            clock.now += seconds_apart
    rest = coalescer.drain()
    return writes + ([(clock.now, rest)] if rest else [])


def test_first_token_is_written_at_once(clock: FakeClock) -> None:
    coalescer = executor.TokenCoalescer()
    assert coalescer.add("Hello") == "Hello"
    assert coalescer.add(" world") is None
    assert coalescer.due_in() == pytest.approx(executor.FRAME_SECONDS)


@pytest.mark.parametrize("seconds_apart", [0.001, 0.015, 0.05, 0.2])
def test_writes_are_bounded_by_time_and_lose_nothing(clock: FakeClock, seconds_apart: float) -> None:
    tokens = [f"t{i} " for i in range(200)]
    started = clock.now
    writes = coalesce(clock, tokens, seconds_apart)
    assert "".join(text for _, text in writes) == "".join(tokens)
    generation = clock.now - started
    # at most one write per FRAME_SECONDS of generation, plus the first piece at once
    assert len(writes) <= generation / executor.FRAME_SECONDS + 2
    gaps = [b - a for (a, _), (b, _) in itertools.pairwise(writes)]
    # and the text never waits longer than the slower of the frame time and the model
    assert max(gaps) <= max(executor.FRAME_SECONDS, seconds_apart) + 1e-9


def test_a_slow_model_has_each_token_written_as_it_comes(clock: FakeClock) -> None:
    writes = coalesce(clock, ["a", "b", "c", "d"], seconds_apart=0.2)  # 5 tokens/s
    assert [text for _, text in writes] == ["a", "b", "c", "d"]


def test_text_waiting_past_its_frame_is_due(clock: FakeClock) -> None:
    coalescer = executor.TokenCoalescer()
    assert coalescer.add("first") == "first"
    assert coalescer.add(" slow") is None
    clock.now += executor.FRAME_SECONDS
    assert coalescer.due_in() == 0
    assert coalescer.add(" token") == " slow token"
    assert coalescer.due_in() is None


def test_a_long_wait_is_written_before_its_time(clock: FakeClock) -> None:
    tokens = ["x" * 100] * 100
    writes = coalesce(clock, tokens, seconds_apart=0.0)
    assert "".join(text for _, text in writes) == "".join(tokens)
    assert max(len(text) for _, text in writes) <= executor.FRAME_CHARS + 100


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
