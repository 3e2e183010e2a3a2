"""The fNIRS corpus shipped with Dynavera, and the one way it reaches a user: uploaded through the
API into the user's own `fnirs` collection, as any upload (`make run`, the live tests, the benches)."""

from __future__ import annotations

from typing import Any

import contract
from cli.upload import FileUpload, Progress, ensure_collection, upload_paths
from local.stack import ROOT

CORPUS = ROOT / "mcp_container" / "corpus"


def upload_corpus(
    api_url: str, key: str, progress: Progress | None = None, wait_seconds: float = 600.0
) -> tuple[dict[str, Any], list[FileUpload]]:
    """The user's `fnirs` collection (created when missing) and each corpus file's way into it;
    files it holds already are not sent again. Raises cli.upload.UploadError."""
    name = contract.DEMO_COLLECTION
    collection = ensure_collection(api_url, key, name, "The fNIRS corpus shipped with Dynavera.")
    return collection, upload_paths(api_url, key, name, [CORPUS], progress=progress, wait_seconds=wait_seconds)
