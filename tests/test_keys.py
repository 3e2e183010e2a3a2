"""API keys' lifecycle (DESIGN §3, §8): a user lists, creates and revokes their own keys over
REST, never seeing a secret twice; the operator lists, revokes and rotates any key with
`./dynavera keys`. A revoked key is refused on REST within 5 s, its open sockets are closed
and a new connect is refused. Real gateway and CLI processes, on the moto server."""

from __future__ import annotations

import subprocess
import threading
import time
import uuid
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from local.stack import Stack
from tests.conftest import ROOT, Api, create_key
from tests.live import WsClient, wait_until

REVOKED_WITHIN_SECONDS = 5.0


def dynavera(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    command = [str(ROOT / "dynavera"), *args]
    return subprocess.run(command, check=False, env=stack.env, capture_output=True, text=True, timeout=60)


def new_user(stack: Stack) -> tuple[str, str, Api]:
    user_id = f"keys-{uuid.uuid4().hex[:6]}"
    key = create_key(stack, user_id)
    return user_id, key, Api(stack, key)


def test_a_user_lists_creates_and_revokes_their_own_keys(rest_stack: Stack) -> None:
    _, first_key, api = new_user(rest_stack)
    created = api.post("/keys", json={"name": "laptop"})
    assert created.status_code == 201, created.text
    body = created.json()
    assert set(body) == {"key_id", "name", "prefix", "created_at", "last_used_at", "key"}
    assert body["name"] == "laptop" and body["key"].startswith(body["prefix"]) and len(body["prefix"]) == 9
    assert Api(rest_stack, body["key"]).get("/agents").status_code == 200
    listed = api.get("/keys").json()["keys"]
    assert [k["name"] for k in listed] == ["", "laptop"]
    assert all(set(k) == {"key_id", "name", "prefix", "created_at", "last_used_at"} for k in listed)
    assert body["key"] not in api.get("/keys").text and first_key not in api.get("/keys").text
    assert listed[0]["last_used_at"] is not None  # this very call used it
    assert api.delete(f"/keys/{body['key_id']}").status_code == 204
    assert [k["name"] for k in api.get("/keys").json()["keys"]] == [""]
    assert api.delete(f"/keys/{body['key_id']}").status_code == 404


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({}, "validation_error"),
        ({"name": ""}, "validation_error"),
        ({"name": "   "}, "validation_error"),
        ({"name": "x" * 101}, "validation_error"),
        ({"name": 7}, "validation_error"),
        ({"name": "n", "user_id": "someone-else"}, "validation_error"),
        (b"not json", "invalid_json"),
        ([], "invalid_json"),
    ],
)
def test_bad_key_requests_are_refused_and_make_no_key(rest_stack: Stack, body: Any, code: str) -> None:
    _, _, api = new_user(rest_stack)
    sent = api.post("/keys", content=body) if isinstance(body, bytes) else api.post("/keys", json=body)
    assert sent.status_code == 400 and sent.json()["error"]["code"] == code and sent.json()["error"]["message"]
    assert len(api.get("/keys").json()["keys"]) == 1


def test_another_users_key_cannot_be_seen_or_revoked(rest_stack: Stack) -> None:
    _, _, alice = new_user(rest_stack)
    _, _, bob = new_user(rest_stack)
    (bobs,) = bob.get("/keys").json()["keys"]
    assert alice.delete(f"/keys/{bobs['key_id']}").status_code == 404
    assert alice.delete("/keys/not-a-uuid").json()["error"]["code"] == "validation_error"
    assert alice.delete(f"/keys/{uuid.uuid4()}").status_code == 404
    assert bobs["key_id"] not in alice.get("/keys").text
    assert bob.get("/agents").status_code == 200


def test_keys_limit_refuses_one_more_key(rest_stack: Stack) -> None:
    _, _, api = new_user(rest_stack)
    limit = api.get("/limits").json()["limits"]["keys"]["limit"]
    made = [api.post("/keys", json={"name": f"k{i}"}) for i in range(limit - 1)]
    assert {m.status_code for m in made} == {201}
    refused = api.post("/keys", json={"name": "one too many"})
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "keys_limit"
    assert api.delete(f"/keys/{made[0].json()['key_id']}").status_code == 204
    assert api.post("/keys", json={"name": "again"}).status_code == 201


class RestLoop:
    """A client calling REST with one key over and over, noting when it was first refused."""

    def __init__(self, stack: Stack, key: str) -> None:
        self.api = Api(stack, key)
        self.refused_at: float | None = None
        self.statuses: set[int] = set()
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while not self.done.is_set():
            status = self.api.get("/agents").status_code
            self.statuses.add(status)
            if status == 401 and self.refused_at is None:
                self.refused_at = time.monotonic()
                return

    def stop(self) -> None:
        self.done.set()
        self.thread.join(timeout=30)


def revoke_everywhere(stack: Stack, revoke: Any) -> None:
    """Open a socket and a REST loop with a fresh key, revoke it, and hold the contract's promises."""
    _, _, owner = new_user(stack)
    doomed = owner.post("/keys", json={"name": "doomed"}).json()
    client = WsClient(stack, doomed["key"])
    loop = RestLoop(stack, doomed["key"])
    try:
        client.send({"action": "ping"})
        assert client.next_frame(timeout=10) == {"type": "pong"}
        wait_until(lambda: 200 in loop.statuses, 10, "the REST loop served")
        # From when the revocation was answered: the CLI's own start-up is not the key cache's.
        revoke(owner, doomed["key_id"])
        revoked_at = time.monotonic()
        wait_until(lambda: loop.refused_at is not None, 15, "the REST loop refused")
        assert loop.refused_at - revoked_at <= REVOKED_WITHIN_SECONDS, loop.refused_at - revoked_at
        assert loop.statuses <= {200, 401}
        with pytest.raises(ConnectionClosed):
            while True:  # whatever arrives first, the server closes the socket
                client.next_frame(timeout=REVOKED_WITHIN_SECONDS)
        with pytest.raises(InvalidStatus) as refused:
            WsClient(stack, doomed["key"])
        assert refused.value.response.status_code == 401
        assert owner.get("/agents").status_code == 200  # the owner's other key goes on
    finally:
        loop.stop()
        client.close()


def test_revoked_over_rest_refused_within_seconds_and_sockets_closed(rest_stack: Stack) -> None:
    revoke_everywhere(rest_stack, lambda owner, key_id: owner.delete(f"/keys/{key_id}").raise_for_status())


def test_revoked_with_the_cli_refused_within_seconds_and_sockets_closed(rest_stack: Stack) -> None:
    def revoke(_: Api, key_id: str) -> None:
        done = dynavera(rest_stack, "keys", "revoke", key_id)
        assert done.returncode == 0, done.stderr
        assert "1 open WebSocket connection(s) closed" in done.stdout

    revoke_everywhere(rest_stack, revoke)


def test_cli_lists_and_rotates_keys_without_showing_a_secret_twice(rest_stack: Stack) -> None:
    user_id, key, api = new_user(rest_stack)
    listed = dynavera(rest_stack, "keys", "list", "--user", user_id)
    assert listed.returncode == 0, listed.stderr
    (line,) = listed.stdout.splitlines()
    key_id = line.split()[0]
    assert user_id in line and key[:9] in line and key not in listed.stdout
    rotated = dynavera(rest_stack, "keys", "rotate", key_id)
    assert rotated.returncode == 0, rotated.stderr
    new_key = rotated.stdout.strip().splitlines()[-1]
    assert new_key != key and Api(rest_stack, new_key).get("/agents").status_code == 200
    wait_until(lambda: api.get("/agents").status_code == 401, REVOKED_WITHIN_SECONDS, "the old key refused")
    assert "revoked" in rotated.stderr and key_id in rotated.stderr
    for bad, says in (("not-a-uuid", "must be a UUID"), (str(uuid.uuid4()), "not found")):
        refused = dynavera(rest_stack, "keys", "revoke", bad)
        assert refused.returncode != 0 and says in refused.stderr, refused.stderr
    assert httpx.get(f"{rest_stack.api_url}/health").status_code == 200
