"""The runtime image cannot be built here (no Docker engine), so check what each of its stages
copies: the build stage everything it prepares the models with, the final stage what serves."""

from __future__ import annotations

import re
from pathlib import Path

CONTEXT = Path(__file__).resolve().parents[2] / "mcp_container"  # the build context: docker build mcp_container
DOCKERFILE = CONTEXT / "Dockerfile"
HEAVY = ("torch", "transformers", "sentence-transformers", "onnx==", "scipy", "scikit-learn", "sympy", "gguf")


def stages() -> list[list[list[str]]]:
    """Each stage's instructions as words, continuation lines joined and comments dropped."""
    lines = [line for line in DOCKERFILE.read_text().splitlines() if not line.lstrip().startswith("#")]
    joined = "\n".join(lines).replace("\\\n", " ")
    found: list[list[list[str]]] = []
    for words in (line.split() for line in joined.splitlines() if line.strip()):
        if words[0].upper() == "FROM":
            found.append([])
        found[-1].append(words)
    return found


def copied_sources(stage: list[list[str]]) -> set[str]:
    """Files of the build context a stage copies, globs expanded."""
    sources: set[str] = set()
    for words in stage:
        if words[0].upper() == "COPY" and not any(w.startswith("--from") for w in words):
            for pattern in (w for w in words[1:-1] if not w.startswith("--")):
                matches = {
                    p.relative_to(CONTEXT).as_posix() + ("/" if p.is_dir() else "")
                    for p in CONTEXT.glob(pattern.rstrip("/"))
                }
                sources |= matches or {f"missing: {pattern}"}
    return sources


def served_modules() -> set[str]:
    """The modules `python -m mcp_container` imports: the closure of top-level imports from __main__."""
    seen: set[str] = set()
    todo = ["__main__"]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo += re.findall(r"^from mcp_container\.(\w+) import", (CONTEXT / f"{name}.py").read_text(), re.MULTILINE)
    return {f"{name}.py" for name in seen} | {"__init__.py"}


def test_the_image_has_a_build_stage_and_a_final_stage() -> None:
    assert len(stages()) == 2


def test_every_file_each_stage_copies_exists_in_the_build_context() -> None:
    for stage in stages():
        sources = copied_sources(stage)
        assert sources, "a stage copies nothing from the context"
        assert not [s for s in sources if s.startswith("missing:")]


def test_the_image_is_healthchecked_non_root_and_prepares_the_model_at_build_time() -> None:
    build, final = ("\n".join(" ".join(words) for words in stage) for stage in stages())
    assert "mcp_container.setup_model" in build and "mcp_container.ingest" in build
    assert "HEALTHCHECK" in final and "/health" in final
    assert "\nUSER " in final
    assert "build/models" in final and "build/rag_db" in final


def test_the_build_stage_has_every_module_and_the_final_stage_every_module_it_serves_with() -> None:
    build, final = stages()
    assert {p.name for p in CONTEXT.glob("*.py")} <= copied_sources(build)
    assert served_modules() <= copied_sources(final)
    assert "server.py" in served_modules() and "setup_model.py" not in served_modules()


def test_the_final_stage_installs_only_what_the_runtime_imports() -> None:
    _, final = stages()
    installs = [" ".join(words) for words in final if words[0].upper() == "RUN" and "pip" in words]
    assert installs and all("requirements-serve.txt" in line for line in installs)
    serve = (CONTEXT / "requirements-serve.txt").read_text().lower()
    assert not [name for name in HEAVY if f"\n{name}" in "\n" + serve]
