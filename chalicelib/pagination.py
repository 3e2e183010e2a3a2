"""Opaque page tokens: the position of the last item of a page, base64url-encoded JSON.

The caller's own user or agent id always comes from the request, never from the token, so a
token cannot reach across owners; a token that does not decode is a validation error.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from chalicelib.errors import Invalid


def encode_token(created_at: str, item_id: str) -> str:
    raw = json.dumps([created_at, item_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(token: str | None) -> tuple[str, str] | None:
    if token is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        created_at, item_id = json.loads(raw)
    except (binascii.Error, ValueError, TypeError) as err:
        raise Invalid("'next_token' is not a token this API issued.", field="next_token") from err
    if not isinstance(created_at, str) or not isinstance(item_id, str):
        raise Invalid("'next_token' is not a token this API issued.", field="next_token")
    return created_at, item_id


def query_page(
    index: Any,
    hash_name: str,
    hash_value: str,
    id_name: str,
    limit: int,
    token: str | None,
    condition: Any = None,
) -> tuple[list[Any], str | None]:
    """One page of a (hash, created_at) index, newest first, and the token of the next page;
    with a filter `condition`, of the items that meet it (PynamoDB reads on until it has them).

    One item more than asked is read, so a page is only followed by a token when more exist.
    """
    start = decode_token(token)
    last_key = None
    if start is not None:
        last_key = {
            hash_name: {"S": hash_value},
            "created_at": {"S": start[0]},
            id_name: {"S": start[1]},
        }
    items = list(
        index.query(
            hash_value,
            filter_condition=condition,
            scan_index_forward=False,
            limit=limit + 1,
            last_evaluated_key=last_key,
        )
    )
    if len(items) <= limit:
        return items, None
    last = items[limit - 1]
    return items[:limit], encode_token(last.created_at, getattr(last, id_name))
