"""Collections and documents (DESIGN §3) over real HTTP through the local gateway, on the moto
server: every route, paging, the presigned POST posted to moto's S3, its signed policy, dedupe
by sha256, bad input, isolation between users, and agents naming their own collections only."""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

import contract
from local import endpoint
from local.stack import Stack
from tests.conftest import Api, create_key
from tests.test_rest_api import assert_error


def new_name() -> str:
    return f"papers-{uuid.uuid4().hex[:8]}"


def new_collection(api: Api, **fields: Any) -> dict[str, Any]:
    response = api.post("/collections", json={"name": new_name(), **fields})
    assert response.status_code == 201, response.text
    return response.json()


def add_document(api: Api, collection_id: str, **fields: Any) -> httpx.Response:
    return api.post(f"/collections/{collection_id}/documents", json={"filename": "notes.md", "size": 11, **fields})


def new_document(api: Api, collection_id: str, **fields: Any) -> dict[str, Any]:
    response = add_document(api, collection_id, **fields)
    assert response.status_code == 201, response.text
    return response.json()


def assert_field_error(response: httpx.Response, status: int, code: str, field: str) -> None:
    assert_error(response, status, code)
    assert response.json()["error"]["field"] == field


def policy_of(upload: dict[str, Any]) -> dict[str, Any]:
    """The signed policy of a presigned POST, decoded from its fields."""
    return json.loads(base64.b64decode(upload["fields"]["policy"]))


def ingest_messages(sqs: Any, stack: Stack) -> Iterator[dict[str, Any]]:
    """Messages on the stage's ingest queue, consumed (nothing else reads it in these tests)."""
    url = sqs.get_queue_url(QueueName=f"dynavera-{stack.stage}-ingest")["QueueUrl"]
    while batch := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        for message in batch:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
            yield json.loads(message["Body"])


def documents_bucket(stack: Stack) -> str:
    """The stage's bucket as the contract names it, in the endpoint's account: what the data stack
    made and the stack handed the Lambda code (it cannot derive the name: no account id)."""
    return contract.documents_bucket(stack.stage, endpoint.account_id(stack.aws_url))


def set_status(stack: Stack, document: dict[str, Any], status: str) -> None:
    """Play the indexer: move a document on, as its conditional writes do."""
    endpoint.client("dynamodb", stack.aws_url).update_item(
        TableName=f"dynavera-{stack.stage}-documents",
        Key={"collection_id": {"S": document["collection_id"]}, "document_id": {"S": document["document_id"]}},
        UpdateExpression="SET #s = :s",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":s": {"S": status}},
    )


@pytest.fixture
def carol(rest_stack: Stack) -> Api:
    """A user with nothing yet, for tests that count what a user has."""
    return Api(rest_stack, create_key(rest_stack, f"carol-{uuid.uuid4().hex[:6]}"))


def test_collection_lifecycle(alice: Api, rest_stack: Stack, sqs: Any) -> None:
    collection = new_collection(alice, description="reading list")
    assert uuid.UUID(collection["collection_id"]).version == 4
    assert collection["status"] == "active" and collection["description"] == "reading list"
    assert (collection["document_count"], collection["chunk_count"]) == (0, 0)
    assert collection["created_at"].endswith("Z") and collection["updated_at"] == collection["created_at"]
    path = f"/collections/{collection['collection_id']}"
    assert alice.get(path).json() == collection

    deleted = alice.delete(path)
    assert deleted.status_code == 202
    assert deleted.json()["status"] == "deleting"
    assert alice.get(path).json()["status"] == "deleting"
    assert {"action": contract.DELETE_COLLECTION, "collection_id": collection["collection_id"]}.items() <= next(
        m for m in ingest_messages(sqs, rest_stack) if m.get("collection_id") == collection["collection_id"]
    ).items()
    # A repeated delete queues the removal again, for a client whose first one could not be queued.
    assert alice.delete(path).status_code == 202
    assert_error(add_document(alice, collection["collection_id"]), 409, "deleting")
    # The name is free again at once.
    again = alice.post("/collections", json={"name": collection["name"]})
    assert again.status_code == 201 and again.json()["collection_id"] != collection["collection_id"]


def test_collection_delete_message_names_its_owner(alice: Api, rest_stack: Stack, sqs: Any) -> None:
    collection = new_collection(alice)
    list(ingest_messages(sqs, rest_stack))
    alice.delete(f"/collections/{collection['collection_id']}")
    (message,) = ingest_messages(sqs, rest_stack)
    assert message["action"] == contract.DELETE_COLLECTION
    assert message["collection_id"] == collection["collection_id"] and message["user_id"].startswith("alice-")


def test_a_name_is_unique_per_user_not_across_users(alice: Api, bob: Api) -> None:
    collection = new_collection(alice)
    assert_field_error(alice.post("/collections", json={"name": collection["name"]}), 409, "name_taken", "name")
    assert bob.post("/collections", json={"name": collection["name"]}).status_code == 201


@pytest.mark.parametrize(
    "body",
    [{}, {"name": ""}, {"name": "ab"}, {"name": "../etc"}, {"name": "a b c"}, {"name": "x" * 64}, {"name": 5},
     {"name": None}, {"name": "-lead"}],
    ids=repr,
)
def test_bad_collection_names_are_refused_naming_the_field(carol: Api, body: dict[str, Any]) -> None:
    assert_field_error(carol.post("/collections", json=body), 400, "validation_error", "name")
    assert carol.get("/collections").json()["collections"] == []


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (json.dumps({"name": "papers", "owner": "bob"}).encode(), "validation_error"),
        (json.dumps({"name": "papers", "description": 5}).encode(), "validation_error"),
        (json.dumps({"name": "papers", "description": "d" * 1001}).encode(), "validation_error"),
        (b"[]", "invalid_json"),
        (b'{"name": "papers"', "invalid_json"),
        (b"", "invalid_json"),
    ],
    ids=repr,
)
def test_bad_collection_bodies_are_refused(carol: Api, body: bytes, code: str) -> None:
    assert_error(carol.post("/collections", content=body, headers={"Content-Type": "application/json"}), 400, code)
    assert carol.get("/collections").json()["collections"] == []


def all_pages(api: Api, path: str, items: str, **params: Any) -> list[str]:
    """The ids of every item of a paged list, read two at a time."""
    seen, token = [], None
    while True:
        page = api.get(path, params={"limit": 2, **params, **({"next_token": token} if token else {})}).json()
        assert len(page[items]) <= 2
        seen += [item[f"{items[:-1]}_id"] for item in page[items]]
        if (token := page["next_token"]) is None:
            return seen


def test_collections_paginate_newest_first_without_gaps(carol: Api) -> None:
    made = [new_collection(carol)["collection_id"] for _ in range(5)]
    assert all_pages(carol, "/collections", "collections") == made[::-1]
    assert_error(carol.get("/collections", params={"limit": 0}), 400, "validation_error")
    assert_error(carol.get("/collections", params={"next_token": "garbage!"}), 400, "validation_error")
    assert_error(carol.get("/collections", params={"status": "active"}), 400, "validation_error")


def test_presigned_post_lands_the_bytes_under_the_documents_key(alice: Api, rest_stack: Stack) -> None:
    collection = new_collection(alice)
    body = b"# Notes\n\nfNIRS measures haemoglobin.\n"
    created = new_document(alice, collection["collection_id"], filename="notes.md", size=len(body))
    document, upload = created["document"], created["upload"]
    assert document["status"] == "awaiting_upload" and document["filename"] == "notes.md"
    assert (document["size"], document["sha256"], document["error"]) == (len(body), None, None)
    assert (document["chunks_total"], document["chunks_done"], document["indexed_at"]) == (0, 0, None)
    key = upload["fields"]["key"]
    assert key.startswith("uploads/") and key.endswith(f"/{collection['collection_id']}/{document['document_id']}")

    posted = httpx.post(upload["url"], data=upload["fields"], files={"file": ("ignored.exe", body)}, timeout=30)
    assert posted.status_code in (200, 201, 204), posted.text
    s3 = endpoint.client("s3", rest_stack.aws_url)
    stored = s3.get_object(Bucket=documents_bucket(rest_stack), Key=key)
    assert stored["Body"].read() == body


def test_the_signed_policy_fixes_the_key_and_bounds_the_size(alice: Api, rest_stack: Stack) -> None:
    # moto does not enforce a POST policy's conditions: they are read back from the fields.
    collection = new_collection(alice)
    upload = new_document(alice, collection["collection_id"], size=1234)["upload"]
    policy = policy_of(upload)
    conditions = policy["conditions"]
    assert ["content-length-range", 1, 1234] in conditions
    assert {"key": upload["fields"]["key"]} in conditions
    assert {"bucket": documents_bucket(rest_stack)} in conditions
    assert not any(isinstance(c, list) and c[0] == "starts-with" for c in conditions)
    assert policy["expiration"].endswith("Z")
    largest = new_document(alice, collection["collection_id"], size=contract.MAX_DOCUMENT_BYTES)["upload"]
    assert ["content-length-range", 1, contract.MAX_DOCUMENT_BYTES] in policy_of(largest)["conditions"]


def test_the_same_bytes_answer_with_the_document_already_there(alice: Api, rest_stack: Stack) -> None:
    collection = new_collection(alice)
    cid = collection["collection_id"]
    digest = hashlib.sha256(b"same bytes").hexdigest()
    first = new_document(alice, cid, sha256=digest.upper())["document"]
    assert first["sha256"] == digest

    waiting = add_document(alice, cid, sha256=digest, filename="copy.md")
    assert waiting.status_code == 200
    assert waiting.json()["document"]["document_id"] == first["document_id"]
    assert waiting.json()["upload"]["fields"]["key"].endswith(first["document_id"])  # its bytes never came

    set_status(rest_stack, first, "indexed")
    again = add_document(alice, cid, sha256=digest)
    assert again.status_code == 200
    assert again.json() == {"document": {**first, "status": "indexed"}, "upload": None}
    other = new_collection(alice)  # dedupe is per collection
    assert add_document(alice, other["collection_id"], sha256=digest).status_code == 201

    set_status(rest_stack, first, "failed")  # a failed document does not stand in the way
    assert add_document(alice, cid, sha256=digest).status_code == 201


@pytest.mark.parametrize(
    ("fields", "status", "code", "field"),
    [
        ({"filename": "tool.exe"}, 400, "unsupported_type", "filename"),
        ({"filename": "README"}, 400, "unsupported_type", "filename"),
        ({"filename": "notes.md.exe"}, 400, "unsupported_type", "filename"),
        ({"filename": "..."}, 400, "validation_error", "filename"),
        ({"filename": "dir/"}, 400, "validation_error", "filename"),
        ({"filename": ""}, 400, "validation_error", "filename"),
        ({"filename": 7}, 400, "validation_error", "filename"),
        ({"filename": None}, 400, "validation_error", "filename"),
        ({"size": 0}, 400, "validation_error", "size"),
        ({"size": -5}, 400, "validation_error", "size"),
        ({"size": "11"}, 400, "validation_error", "size"),
        ({"size": 1.5}, 400, "validation_error", "size"),
        ({"size": True}, 400, "validation_error", "size"),
        ({"size": None}, 400, "validation_error", "size"),
        ({"size": contract.MAX_DOCUMENT_BYTES + 1}, 400, "too_large", "size"),
        ({"size": 10**30}, 400, "too_large", "size"),
        ({"sha256": "abc"}, 400, "validation_error", "sha256"),
        ({"sha256": "g" * 64}, 400, "validation_error", "sha256"),
        ({"sha256": 5}, 400, "validation_error", "sha256"),
    ],
    ids=repr,
)
def test_bad_document_requests_are_refused_naming_the_field(
    alice: Api, fields: dict[str, Any], status: int, code: str, field: str
) -> None:
    collection = new_collection(alice)
    assert_field_error(add_document(alice, collection["collection_id"], **fields), status, code, field)
    assert alice.get(f"/collections/{collection['collection_id']}/documents").json()["documents"] == []


def test_document_bodies_missing_a_field_or_with_an_extra_one_are_refused(alice: Api) -> None:
    cid = new_collection(alice)["collection_id"]
    missing_name = alice.post(f"/collections/{cid}/documents", json={"size": 3})
    assert_field_error(missing_name, 400, "validation_error", "filename")
    missing_size = alice.post(f"/collections/{cid}/documents", json={"filename": "a.md"})
    assert_field_error(missing_size, 400, "validation_error", "size")
    extra = alice.post(f"/collections/{cid}/documents", json={"filename": "a.md", "size": 3, "key": "uploads/x"})
    assert_error(extra, 400, "validation_error")
    assert alice.get(f"/collections/{cid}/documents").json()["documents"] == []


@pytest.mark.parametrize(
    ("filename", "shown"),
    [
        ("../../etc/passwd.md", "passwd.md"),
        ("..\\..\\windows\\boot.txt", "boot.txt"),
        ("a\x00b\nc\x1b[31m.md", "abc[31m.md"),
        ("\u202egnp.md", "gnp.md"),
        ("  .hidden.txt ", "hidden.txt"),
        ("Report.PDF", "Report.PDF"),
        ("x" * 300 + ".pdf", "x" * 251 + ".pdf"),
    ],
    ids=repr,
)
def test_hostile_filenames_are_kept_as_safe_display_names_never_keys(alice: Api, filename: str, shown: str) -> None:
    cid = new_collection(alice)["collection_id"]
    created = new_document(alice, cid, filename=filename)
    assert created["document"]["filename"] == shown
    key = created["upload"]["fields"]["key"]
    assert key.endswith(f"/{cid}/{created['document']['document_id']}") and ".." not in key


def test_documents_list_paged_newest_first_and_filtered_by_status(alice: Api, rest_stack: Stack) -> None:
    cid = new_collection(alice)["collection_id"]
    made = [new_document(alice, cid)["document"] for _ in range(5)]
    for document in made[1::2]:
        set_status(rest_stack, document, "indexed")

    path = f"/collections/{cid}/documents"
    ids = [d["document_id"] for d in made]
    assert all_pages(alice, path, "documents") == ids[::-1]
    assert all_pages(alice, path, "documents", status="indexed") == ids[1::2][::-1]
    assert all_pages(alice, path, "documents", status="awaiting_upload") == ids[0::2][::-1]
    assert all_pages(alice, path, "documents", status="failed") == []
    assert_field_error(alice.get(path, params={"status": "done"}), 400, "validation_error", "status")
    assert_error(alice.get(path, params={"limit": 101}), 400, "validation_error")
    assert_error(alice.get(path, params={"sort": "name"}), 400, "validation_error")


def test_document_get_and_delete(alice: Api, rest_stack: Stack, sqs: Any) -> None:
    cid = new_collection(alice)["collection_id"]
    document = new_document(alice, cid)["document"]
    path = f"/collections/{cid}/documents/{document['document_id']}"
    assert alice.get(path).json() == document
    list(ingest_messages(sqs, rest_stack))

    deleted = alice.delete(path)
    assert deleted.status_code == 202 and deleted.json()["status"] == "deleting"
    assert alice.get(path).json()["status"] == "deleting"
    assert alice.delete(path).status_code == 202
    removal = {"action": contract.DELETE_DOCUMENT, "collection_id": cid, "document_id": document["document_id"]}
    assert list(ingest_messages(sqs, rest_stack)) == [removal, removal]
    assert_error(alice.get(f"/collections/{cid}/documents/{uuid.uuid4()}"), 404, "not_found")
    assert_error(alice.get(f"/collections/{cid}/documents/not-a-uuid"), 400, "validation_error")


def test_another_users_collections_and_documents_answer_404_on_every_route(
    alice: Api, bob: Api, rest_stack: Stack, sqs: Any
) -> None:
    cid = new_collection(alice)["collection_id"]
    document = new_document(alice, cid)["document"]
    doc_path = f"/collections/{cid}/documents/{document['document_id']}"
    list(ingest_messages(sqs, rest_stack))
    for method, path, body in [
        ("GET", f"/collections/{cid}", None),
        ("DELETE", f"/collections/{cid}", None),
        ("GET", f"/collections/{cid}/documents", None),
        ("POST", f"/collections/{cid}/documents", {"filename": "x.md", "size": 3}),
        ("GET", doc_path, None),
        ("DELETE", doc_path, None),
    ]:
        assert_error(bob.request(method, path, json=body), 404, "not_found")
    # bob's own collection does not open alice's document either.
    own = new_collection(bob)["collection_id"]
    assert_error(bob.get(f"/collections/{own}/documents/{document['document_id']}"), 404, "not_found")
    assert cid not in [c["collection_id"] for c in bob.get("/collections", params={"limit": 100}).json()["collections"]]
    # Nothing of alice's moved, and nothing was queued for removal.
    assert alice.get(f"/collections/{cid}").json()["status"] == "active"
    assert alice.get(doc_path).json()["status"] == "awaiting_upload"
    assert list(ingest_messages(sqs, rest_stack)) == []


@pytest.mark.parametrize("header", [None, "Bearer wrong"])
def test_collection_routes_need_a_valid_key(rest_stack: Stack, header: str | None) -> None:
    headers = {"Authorization": header} if header else {}
    for method, path in [("GET", "/collections"), ("POST", "/collections"), ("GET", f"/collections/{uuid.uuid4()}")]:
        response = httpx.request(method, rest_stack.api_url + path, headers=headers, json={"name": new_name()})
        assert_error(response, 401, "unauthorized")


def test_agents_name_only_their_owners_collections(alice: Api, bob: Api) -> None:
    mine = new_collection(alice)["name"]
    bobs = new_collection(bob)["name"]
    default = alice.post("/agents", json={"name": "plain"})
    assert default.status_code == 201 and default.json()["config"]["collection"] is None

    agent = alice.post("/agents", json={"name": "reader", "config": {"collection": mine}})
    assert agent.status_code == 201 and agent.json()["config"]["collection"] == mine
    messages = set()
    for name in (bobs, "no-such-collection"):
        refused = alice.post("/agents", json={"name": "reader", "config": {"collection": name}})
        assert_field_error(refused, 400, "validation_error", "config.collection")
        # bob's collection answers exactly as a missing one, and no other name is listed.
        messages.add(refused.json()["error"]["message"].replace(name, "NAME"))
        assert mine not in refused.text
        patched = alice.patch(f"/agents/{agent.json()['agent_id']}", json={"config": {"collection": name}})
        assert_field_error(patched, 400, "validation_error", "config.collection")
    assert len(messages) == 1
    assert alice.get(f"/agents/{agent.json()['agent_id']}").json()["config"]["collection"] == mine
    cleared = alice.patch(f"/agents/{agent.json()['agent_id']}", json={"config": {"collection": None}})
    assert cleared.status_code == 200 and cleared.json()["config"]["collection"] is None


def test_a_collection_an_agent_names_cannot_be_deleted(alice: Api, rest_stack: Stack, sqs: Any) -> None:
    collection = new_collection(alice)
    path = f"/collections/{collection['collection_id']}"
    agent = alice.post("/agents", json={"name": "reader", "config": {"collection": collection["name"]}}).json()
    list(ingest_messages(sqs, rest_stack))
    assert_error(alice.delete(path), 409, "in_use")
    assert alice.get(path).json()["status"] == "active"
    assert list(ingest_messages(sqs, rest_stack)) == []
    alice.patch(f"/agents/{agent['agent_id']}", json={"config": {"collection": None}})
    assert alice.delete(path).status_code == 202
    # Once it is deleting, no agent may name it.
    refused = alice.post("/agents", json={"name": "late", "config": {"collection": collection["name"]}})
    assert_field_error(refused, 400, "validation_error", "config.collection")


def test_concurrent_creates_of_one_name_make_one_collection(carol: Api) -> None:
    name = new_name()
    with ThreadPoolExecutor(max_workers=6) as pool:
        answers = list(pool.map(lambda _: carol.post("/collections", json={"name": name}), range(6)))
    assert sorted(a.status_code for a in answers) == [201] + [409] * 5
    assert [c["name"] for c in carol.get("/collections").json()["collections"]] == [name]
