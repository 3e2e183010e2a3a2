"""The runtime image cannot be built here (no Docker engine), so check what each of its stages
copies: the build stage everything it prepares the models with, the final stage what runs (the
runtime, the Chroma server and the indexer), and no collection anywhere."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CONTEXT = ROOT / "mcp_container"  # the build context: docker build mcp_container
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
    assert "mcp_container.setup_model" in build
    assert "HEALTHCHECK" in final and "/health" in final
    assert "\nUSER " in final
    assert "build/models" in final


def test_the_image_holds_no_collection() -> None:
    # Documents are uploaded through the API into S3 and the Chroma server (DESIGN §1): nothing
    # ingested at build, no corpus copied, no embedded index shipped.
    text = "\n".join(" ".join(words) for stage in stages() for words in stage)
    assert "mcp_container.ingest" not in text and "rag_db" not in text
    assert not [s for stage in stages() for s in copied_sources(stage) if s.startswith("corpus")]
    ignored = (CONTEXT / ".dockerignore").read_text().split()
    assert "corpus/" in ignored, "the corpus would still change the image's content tag"


def test_the_final_stage_runs_the_runtime_the_chroma_server_and_the_indexer() -> None:
    _, final = stages()
    # Every module is there, so `python -m mcp_container.indexer` is as the runtime is.
    assert {p.name for p in CONTEXT.glob("*.py")} <= copied_sources(final)
    serve = _pins(CONTEXT / "requirements-serve.txt")
    # `chroma run` is the chromadb wheel's own command: the server is the clients' version.
    assert "chromadb" in serve
    assert {"pypdf", "boto3"} <= set(serve), "the indexer reads PDFs and talks to S3, SQS and DynamoDB"
    assert _pins(ROOT / "requirements-deploy.txt")["boto3"] == serve["boto3"]
    default = [words for words in final if words[0].upper() == "CMD"]
    assert default == [["CMD", '["python",', '"-m",', '"mcp_container"]']]


def _pins(path: Path) -> dict[str, str]:
    """name → version of a requirements file's `name==version` lines."""
    lines = (line.split("#")[0].strip() for line in path.read_text().splitlines())
    return dict(line.lower().split("==", 1) for line in lines if "==" in line)


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


def test_both_stages_copy_the_contract_from_the_named_context_the_deploy_build_gives() -> None:
    from deploy import image

    for stage in stages():
        copies = [words for words in stage if words[0].upper() == "COPY" and "--from=contract" in words]
        assert [words[-1] for words in copies] == ["contract/"]
    assert image.NAMED_CONTEXTS["contract"] == CONTEXT.parent / "contract"
    assert "--build-context=contract=contract" in image.build_command("dynavera-runtime:x")
