"""The Lambda package stays light: `import app` loads nothing from the runtime's world."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("torch", "chromadb", "gpt4all", "sentence_transformers", "numpy", "transformers", "httpx", "rich")


def test_import_app_loads_nothing_heavy() -> None:
    probe = (
        "import sys, app; "
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == ""


def test_lambda_requirements_hold_no_runtime_packages() -> None:
    names = {
        line.split("==")[0].strip().lower()
        for line in (ROOT / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert names, "requirements.txt lists the Lambda's dependencies"
    assert not names & {"torch", "chromadb", "gpt4all", "sentence-transformers", "moto", "pytest"}
    assert all(
        "==" in line
        for line in (ROOT / "requirements.txt").read_text().splitlines()
        if line and not line.startswith("#")
    )
