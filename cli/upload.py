"""Files into a collection through the REST API (DESIGN §3): ask the API for each document, POST
its bytes straight to S3 with the presigned form it answers, then follow it through indexing.
`./dynavera upload`, `make deploy DEMO=1` and the local stack's demo corpus all go this way.

Only the API is trusted with names: the file's own name is sent as `filename`, never a key.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from contract import DOCUMENT_TYPES

# A document stops here: indexed, failed, or gone from under us.
TERMINAL = frozenset({"indexed", "failed", "deleting"})
POLL_SECONDS = 0.5


class UploadError(RuntimeError):
    """The upload as a whole cannot go on (no such collection, the API unreachable)."""


@dataclass
class FileUpload:
    """One file's way: `status` is `unchanged` (the collection holds these bytes already),
    `uploaded`, then the document's own statuses; `failed` with `error` {code, message}."""

    path: Path
    status: str = "pending"
    document_id: str | None = None
    chunks_done: int = 0
    chunks_total: int = 0
    error: dict[str, str] | None = None
    document: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def done(self) -> bool:
        return self.status in TERMINAL or self.status == "unchanged"


Progress = Callable[[FileUpload], None]


def collect(paths: Iterable[str | Path]) -> list[Path]:
    """The files named, and the .md, .txt and .pdf files under the folders named, in a stable order.

    A file named outright is sent whatever its type, so the API's answer (`unsupported_type`)
    is what the user sees.
    """
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in DOCUMENT_TYPES)
        elif path.is_file():
            found.append(path)
        else:
            raise UploadError(f"{path}: no such file or folder.")
    return list(dict.fromkeys(found))


def find_collection(api: httpx.Client, name: str) -> dict[str, Any] | None:
    token: str | None = None
    while True:
        page = _json(api.get("/collections", params={"limit": 100, **({"next_token": token} if token else {})}))
        for collection in page["collections"]:
            if collection["name"] == name:
                return collection
        token = page.get("next_token")
        if not token:
            return None


def ensure_collection(api_url: str, key: str, name: str, description: str = "") -> dict[str, Any]:
    """The caller's collection of that name, created when it does not exist yet."""
    with _client(api_url, key) as api:
        try:
            response = api.post("/collections", json={"name": name, "description": description})
            if response.status_code == 409:
                existing = find_collection(api, name)
                if existing is not None:
                    return existing
            return _json(response)
        except httpx.HTTPError as err:
            raise UploadError(f"Cannot reach the API at {api_url}: {err}") from err


def upload_paths(
    api_url: str,
    key: str,
    collection_name: str,
    paths: Iterable[str | Path],
    progress: Progress | None = None,
    wait_seconds: float = 600.0,
) -> list[FileUpload]:
    """Upload every file (unchanged ones are skipped by their sha256), then follow them until
    each is indexed or failed, or `wait_seconds` pass (0: do not wait). A file that fails is
    reported with its code and the others go on."""
    report = progress or (lambda _: None)
    files = collect(paths)
    with _client(api_url, key) as api:
        try:
            collection = find_collection(api, collection_name)
            if collection is None:
                raise UploadError(
                    f"You have no collection named {collection_name!r}; "
                    f"create it with ./dynavera collections create {collection_name}."
                )
            uploads = [_send(api, collection["collection_id"], path, report) for path in files]
            if wait_seconds > 0:
                _follow(api, collection["collection_id"], uploads, report, time.monotonic() + wait_seconds)
        except httpx.HTTPError as err:
            raise UploadError(f"Cannot reach the API at {api_url}: {err}") from err
    return uploads


def _send(api: httpx.Client, collection_id: str, path: Path, report: Progress) -> FileUpload:
    upload = FileUpload(path)
    data = path.read_bytes()
    answer = api.post(
        f"/collections/{collection_id}/documents",
        json={"filename": path.name, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()},
    )
    if answer.status_code >= 400:
        return _failed(upload, answer, report)
    body = _json(answer)
    _update(upload, body["document"])
    if body["upload"] is None:
        upload.status = "unchanged"
        report(upload)
        return upload
    form = body["upload"]
    # S3 reads the form's fields before the file, and refuses a file that is not last.
    try:
        stored = httpx.post(form["url"], data=form["fields"], files={"file": (path.name, data)}, timeout=300)
    except httpx.HTTPError as err:
        upload.status, upload.error = "failed", {"code": "upload_failed", "message": f"Cannot reach S3: {err}"}
    else:
        if stored.status_code >= 300:
            message = f"S3 refused the file ({stored.status_code}): {stored.text[:300]}"
            upload.status, upload.error = "failed", {"code": "upload_refused", "message": message}
        else:
            upload.status = "uploaded"
    report(upload)
    return upload


def _follow(
    api: httpx.Client, collection_id: str, uploads: list[FileUpload], report: Progress, deadline: float
) -> None:
    while True:
        waiting = [u for u in uploads if not u.done]
        if not waiting:
            return
        if time.monotonic() > deadline:
            for upload in waiting:
                upload.error = {"code": "timeout", "message": f"still {upload.status} when the wait ended"}
                report(upload)
            return
        for upload in waiting:
            answer = api.get(f"/collections/{collection_id}/documents/{upload.document_id}")
            if answer.status_code >= 400:
                _failed(upload, answer, report)
                continue
            before = (upload.status, upload.chunks_done)
            _update(upload, _json(answer))
            if (upload.status, upload.chunks_done) != before:
                report(upload)
        time.sleep(POLL_SECONDS)  # the indexer reports chunks_done about once a second


def _update(upload: FileUpload, document: dict[str, Any]) -> None:
    upload.document = document
    upload.document_id = document["document_id"]
    # The row reads awaiting_upload until the indexer has S3's notification; the bytes are sent,
    # and a progress line going back from `uploaded` would say otherwise.
    sent = upload.status == "uploaded" and document["status"] == "awaiting_upload"
    upload.status = "uploaded" if sent else document["status"]
    upload.chunks_done = document.get("chunks_done") or 0
    upload.chunks_total = document.get("chunks_total") or 0
    upload.error = document.get("error")


def _failed(upload: FileUpload, answer: httpx.Response, report: Progress) -> FileUpload:
    upload.status = "failed"
    upload.error = _error(answer)
    report(upload)
    return upload


def _error(answer: httpx.Response) -> dict[str, str]:
    try:
        error = answer.json()["error"]
        return {"code": error["code"], "message": error["message"]}
    except (ValueError, KeyError, TypeError):
        return {"code": f"http_{answer.status_code}", "message": answer.text[:300]}


def _json(answer: httpx.Response) -> Any:
    if answer.status_code >= 400:
        error = _error(answer)
        request = answer.request
        raise UploadError(
            f"{request.method} {request.url.path}: {answer.status_code} {error['code']}: {error['message']}"
        )
    return answer.json()


def _client(api_url: str, key: str) -> httpx.Client:
    return httpx.Client(base_url=api_url.rstrip("/"), headers={"Authorization": f"Bearer {key}"}, timeout=30)
