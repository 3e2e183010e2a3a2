"""The console's API types are generated from the API's OpenAPI document, never hand-written:
regenerated here, they must equal the committed console/src/api/schema.d.ts."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from chalicelib import openapi

ROOT = Path(__file__).resolve().parents[2]
CONSOLE = ROOT / "console"


def test_generated_types_match_the_openapi_document(tmp_path: Path) -> None:
    generator = CONSOLE / "node_modules" / ".bin" / "openapi-typescript"
    if not generator.exists() or shutil.which("node") is None:
        pytest.skip("console/node_modules is not installed (make console-test installs it)")
    document = tmp_path / "openapi.json"
    document.write_text(json.dumps(openapi.document(), indent=1))
    generated = tmp_path / "schema.d.ts"
    subprocess.run([str(generator), str(document), "-o", str(generated)], cwd=CONSOLE, check=True, capture_output=True)
    committed = (CONSOLE / "src" / "api" / "schema.d.ts").read_text()
    assert generated.read_text() == committed, "the API changed: run `make console-types` and commit the result"
