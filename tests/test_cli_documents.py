"""`./dynavera collections …` and `./dynavera upload …` against a running stack with the real
indexer: what a user sees, per file, for good files, bad ones and files sent before."""

from __future__ import annotations

import os
import re
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from local.stack import Stack
from tests.conftest import Api, create_key

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def key(documents_stack: Stack) -> str:
    return create_key(documents_stack, f"cli-{uuid.uuid4().hex[:6]}")


Cli = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def dynavera(documents_stack: Stack, key: str, tmp_path: Path) -> Cli:
    """`./dynavera ARGS…` as the test's user (or `as_key`), against the documents stack."""
    # XDG_CONFIG_HOME: no stage chosen with `use` on this machine leaks in.
    env = {**os.environ, "DYNAVERA_API_URL": documents_stack.api_url, "XDG_CONFIG_HOME": str(tmp_path)}

    def run(*args: str, as_key: str = key) -> subprocess.CompletedProcess[str]:
        command = [str(ROOT / "dynavera"), "--key", as_key, *args]
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=600, check=False)

    return run


def line_of(output: str, name: str) -> str:
    """The last line the upload printed for a file (its final state)."""
    return [line for line in output.splitlines() if line.startswith(name)][-1]


def test_upload_indexes_good_files_names_each_failure_and_skips_what_was_sent(
    dynavera: Cli, documents_stack: Stack, key: str, tmp_path: Path
) -> None:
    folder = tmp_path / "papers"
    (folder / "deeper").mkdir(parents=True)
    (folder / "good.md").write_text("# Optodes\n\nA Quillon optode sits 3 cm from its detector.\n")
    (folder / "deeper" / "notes.txt").write_text("Short-separation channels regress out scalp blood flow.\n")
    (folder / "binary.txt").write_bytes(bytes(range(256)) * 8)  # named .txt, not UTF-8 text
    (folder / "empty.md").write_bytes(b"")
    (folder / "ignored.docx").write_bytes(b"PK\x03\x04")  # in a folder: not one of the types, left out
    named = tmp_path / "report.docx"  # named on its own: sent, and refused with its reason
    named.write_bytes(b"PK\x03\x04")
    name = f"papers-{uuid.uuid4().hex[:8]}"

    first = dynavera("upload", str(folder), str(named), "--collection", name)

    assert first.returncode == 1, first.stderr
    out = first.stdout
    assert re.search(r"\[#{20}\].*indexed$", line_of(out, "good.md"))
    assert line_of(out, "notes.txt").endswith("indexed")
    assert re.search(r"failed +not_text: ", line_of(out, "binary.txt"))
    assert re.search(r"failed +validation_error: ", line_of(out, "empty.md"))
    assert re.search(r"failed +unsupported_type: ", line_of(out, "report.docx"))
    assert "ignored.docx" not in out
    assert out.splitlines()[-1] == f"2 of 5 files indexed in {name}; 3 failed"

    second = dynavera("upload", str(folder / "good.md"), "--collection", name)
    assert second.returncode == 0, second.stderr
    assert re.search(r"\[#{20}\].*unchanged \(not sent again\)$", line_of(second.stdout, "good.md"))

    shown = dynavera("collections", "show", name)
    assert shown.returncode == 0, shown.stderr
    assert re.search(r"good\.md  indexed  (\d+)/\1 chunks", shown.stdout)
    assert "binary.txt  failed  0/0 chunks  not_text:" in shown.stdout
    listed = dynavera("collections", "list")
    assert re.search(rf"  {name}  active  \d+ documents", listed.stdout)


def test_collections_create_show_and_delete_and_the_errors_a_user_meets(
    dynavera: Cli, documents_stack: Stack, key: str, tmp_path: Path
) -> None:
    name = f"kept-{uuid.uuid4().hex[:8]}"
    made = dynavera("collections", "create", name, "--description", "for later")
    assert made.returncode == 0 and re.fullmatch(r"[0-9a-f-]{36}\n", made.stdout), made.stderr

    again = dynavera("collections", "create", name)
    assert again.returncode == 1 and "409" in again.stderr
    bad = dynavera("collections", "create", "x")
    assert bad.returncode == 1 and "400 validation_error" in bad.stderr

    api = Api(documents_stack, key)
    agent = api.post("/agents", json={"name": "uses it", "config": {"collection": name}}).json()
    in_use = dynavera("collections", "delete", name)
    assert in_use.returncode == 1 and "409 in_use" in in_use.stderr
    api.delete(f"/agents/{agent['agent_id']}")
    deleted = dynavera("collections", "delete", name)
    assert deleted.returncode == 0 and "deleting" in deleted.stdout, deleted.stderr

    unknown = dynavera("collections", "show", "no-such-collection")
    assert unknown.returncode == 1 and "no collection named 'no-such-collection'" in unknown.stderr
    missing = dynavera("upload", str(tmp_path / "nope.md"), "--collection", name)
    assert missing.returncode == 1 and "no such file or folder" in missing.stderr
    (tmp_path / "empty-folder").mkdir()
    nothing = dynavera("upload", str(tmp_path / "empty-folder"), "--collection", name)
    assert nothing.returncode == 1 and "no .md, .txt or .pdf files" in nothing.stderr
    (tmp_path / "a.md").write_text("a\n")
    refused = dynavera("upload", str(tmp_path / "a.md"), "--collection", name, as_key="dv_not-a-key")
    assert refused.returncode == 1 and "401" in refused.stderr
