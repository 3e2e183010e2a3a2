"""checkov on every template, offline: infra/ and the app's packaged template. Nothing fails; each
check a template skips says why in the template itself (`Metadata: checkov: skip`)."""

from __future__ import annotations

import json
import os
import subprocess
from typing import Any

import pytest

from tests.infra.conftest import INFRA, ROOT, DryRun

CHECKOV = ROOT / "build" / "tools" / "checkov" / "bin" / "checkov"


def scan(*target: str) -> dict[str, Any]:
    if not CHECKOV.exists():
        message = f"checkov is not installed at {CHECKOV.relative_to(ROOT)}: run `make checkov` (make test does)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    done = subprocess.run(
        # --skip-download: no call to Prisma Cloud; the checks ship in the package.
        [str(CHECKOV), *target, "--framework", "cloudformation", "--skip-download", "-o", "json"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode in (0, 1), done.stderr
    return json.loads(done.stdout)


def _report(found: dict[str, Any]) -> None:
    results = found["results"]
    failed = [f"{c['check_id']} {c['resource']} ({c['file_path']})" for c in results["failed_checks"]]
    assert not failed, "\n".join(failed)
    assert found["summary"]["parsing_errors"] == 0, results["parsing_errors"]
    unexplained = [c["check_id"] for c in results["skipped_checks"] if not c["check_result"].get("suppress_comment")]
    assert not unexplained, unexplained
    assert found["summary"]["passed"] > 0


def test_infra_templates_pass_checkov_and_say_why_they_skip_a_check() -> None:
    found = scan("-d", str(INFRA))
    _report(found)
    scanned = {c["file_path"].lstrip("/") for c in found["results"]["passed_checks"]}
    assert scanned == {p.name for p in INFRA.glob("*.yaml")}, "a template checkov did not read"


def test_packaged_app_template_passes_checkov_and_says_why_it_skips_a_check(dry_run: DryRun) -> None:
    _report(scan("-f", str(dry_run.template_path)))


def test_queues_are_encrypted_and_history_tables_recoverable() -> None:
    from tests.infra.conftest import template

    resources = template("data.yaml")["Resources"]
    queues = [r for r in resources.values() if r["Type"] == "AWS::SQS::Queue"]
    assert queues and all(q["Properties"]["SqsManagedSseEnabled"] is True for q in queues)
    tables = [r for r in resources.values() if r["Type"] == "AWS::DynamoDB::Table"]
    kept = [r for r in tables if r.get("DeletionPolicy") == "Retain"]
    assert kept and all(r["Properties"]["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] for r in kept)

