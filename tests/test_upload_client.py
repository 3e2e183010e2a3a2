"""cli/upload.py, the upload client `./dynavera upload` and `make deploy DEMO=1` share: files go
to S3 (the suite's moto server) through presigned POSTs, unchanged ones are skipped, a refused
or failed file is named with its code while the others go on, and the wait has a deadline."""

from __future__ import annotations

import hashlib
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cli import upload
from local import endpoint
from tests.fixtures.documents_api import KEY, DocumentsApi


@pytest.fixture(scope="module")
def s3(aws_endpoint: str) -> Any:
    return endpoint.client("s3", aws_endpoint)


@pytest.fixture
def api(s3: Any) -> Iterator[DocumentsApi]:
    bucket = f"uploadtest-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    server = DocumentsApi(s3, bucket)
    yield server
    server.close()


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    folder = tmp_path / "corpus"
    (folder / "nested").mkdir(parents=True)
    (folder / "a.md").write_text("# Optodes\nSources and detectors.\n")
    (folder / "nested" / "b.txt").write_text("Short-separation channels.\n")
    (folder / "image.png").write_bytes(b"\x89PNG\r\n")  # not a document type: left out of a folder
    return folder


def _objects(s3: Any, bucket: str) -> dict[str, bytes]:
    listed = s3.list_objects_v2(Bucket=bucket).get("Contents", [])
    return {o["Key"]: s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read() for o in listed}


def test_a_folder_is_uploaded_to_s3_and_followed_until_indexed(api: DocumentsApi, s3: Any, corpus: Path) -> None:
    upload.ensure_collection(api.url, KEY, "fnirs")
    seen: list[tuple[str, str, int]] = []
    files = upload.upload_paths(
        api.url, KEY, "fnirs", [corpus], progress=lambda f: seen.append((f.path.name, f.status, f.chunks_done))
    )
    assert [(f.path.name, f.status, f.chunks_done, f.chunks_total) for f in files] == [
        ("a.md", "indexed", 3, 3),
        ("b.txt", "indexed", 3, 3),
    ]
    stored = _objects(s3, api.bucket)
    assert sorted(stored.values()) == sorted(p.read_bytes() for p in (corpus / "a.md", corpus / "nested" / "b.txt"))
    # The key is the API's (under the collection), never the user's path.
    assert all(key.startswith("uploads/") and "nested" not in key and not key.endswith(".md") for key in stored)
    a_md = [(status, done) for name, status, done in seen if name == "a.md"]
    assert a_md[0] == ("uploaded", 0) and a_md[-1] == ("indexed", 3)
    assert ("awaiting_upload", 0) not in a_md, "sent bytes never read as waiting for them again"
    assert ("embedding", 1) in a_md, "chunks_done is reported as it moves"


def test_unchanged_files_are_not_sent_again(api: DocumentsApi, s3: Any, corpus: Path) -> None:
    upload.ensure_collection(api.url, KEY, "fnirs")
    upload.upload_paths(api.url, KEY, "fnirs", [corpus])
    before = _objects(s3, api.bucket)
    (corpus / "c.md").write_text("A new note.\n")
    again = upload.upload_paths(api.url, KEY, "fnirs", [corpus])
    assert {f.path.name: f.status for f in again} == {"a.md": "unchanged", "b.txt": "unchanged", "c.md": "indexed"}
    assert len(_objects(s3, api.bucket)) == len(before) + 1
    document = next(d for d in api.documents.values() if d["filename"] == "c.md")
    assert document["sha256"] == hashlib.sha256(b"A new note.\n").hexdigest()


def test_a_refused_or_failed_file_is_named_with_its_code_and_the_others_go_on(
    api: DocumentsApi, tmp_path: Path, corpus: Path
) -> None:
    upload.ensure_collection(api.url, KEY, "mixed")
    (tmp_path / "data.bin").write_bytes(b"\x00\x01")
    (tmp_path / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    files = upload.upload_paths(
        api.url, KEY, "mixed", [tmp_path / "data.bin", tmp_path / "latin1.txt", corpus / "a.md"]
    )
    outcome = {f.path.name: (f.status, (f.error or {}).get("code")) for f in files}
    assert outcome == {
        "data.bin": ("failed", "unsupported_type"),
        "latin1.txt": ("failed", "not_text"),
        "a.md": ("indexed", None),
    }
    assert files[0].document_id is None, "the API refused it: no document was made"


def test_the_wait_ends_at_its_deadline_with_the_file_still_named(api: DocumentsApi, tmp_path: Path) -> None:
    upload.ensure_collection(api.url, KEY, "slow")
    (tmp_path / "stuck.md").write_text("The indexer never gets to this one.\n")
    (stuck,) = upload.upload_paths(api.url, KEY, "slow", [tmp_path / "stuck.md"], wait_seconds=1.5)
    assert stuck.status == "queued" and stuck.error is not None and stuck.error["code"] == "timeout"
    no_wait = upload.upload_paths(api.url, KEY, "slow", [tmp_path / "stuck.md"], wait_seconds=0)
    assert [(f.status, f.error) for f in no_wait] == [("unchanged", None)]


def test_a_collection_is_found_across_pages_and_created_once(api: DocumentsApi, tmp_path: Path) -> None:
    for name in ("first", "second", "third"):
        upload.ensure_collection(api.url, KEY, name)
    again = upload.ensure_collection(api.url, KEY, "third")  # 409, then found on the API's third page
    assert again["collection_id"] == next(c["collection_id"] for c in api.collections.values() if c["name"] == "third")
    assert len(api.collections) == 3
    (tmp_path / "n.md").write_text("note\n")
    (file,) = upload.upload_paths(api.url, KEY, "third", [tmp_path / "n.md"], wait_seconds=0)
    assert (
        file.status == "uploaded" and api.documents[file.document_id or ""]["collection_id"] == again["collection_id"]
    )


def test_what_cannot_start_says_what_to_do(api: DocumentsApi, tmp_path: Path) -> None:
    (tmp_path / "n.md").write_text("note\n")
    with pytest.raises(upload.UploadError, match="collections create nowhere"):
        upload.upload_paths(api.url, KEY, "nowhere", [tmp_path / "n.md"])
    with pytest.raises(upload.UploadError, match="no such file or folder"):
        upload.upload_paths(api.url, KEY, "nowhere", [tmp_path / "missing.md"])
    with pytest.raises(upload.UploadError, match="401 unauthorized"):
        upload.upload_paths(api.url, "dv_wrong", "nowhere", [tmp_path / "n.md"])
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    with pytest.raises(upload.UploadError, match="Cannot reach the API"):
        upload.upload_paths(closed, KEY, "fnirs", [tmp_path / "n.md"])
    with pytest.raises(upload.UploadError, match="Cannot reach the API"):
        upload.ensure_collection(closed, KEY, "fnirs")
