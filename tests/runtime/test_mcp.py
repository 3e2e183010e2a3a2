"""/mcp through the MCP SDK's own client, over streamable HTTP."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

import contract
from tests.fixtures.runtime import FNIRS_COLLECTION_ID


async def _list_and_search(url: str, secret: str) -> tuple[set[str], Any]:
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {secret}"})
    async with http, Client(streamable_http_client(f"{url}/mcp", http_client=http)) as client:
        tools = await client.list_tools()
        found = await client.call_tool(
            "search_documents", {"query": "motion artefacts", "collection_id": FNIRS_COLLECTION_ID, "top_k": 2}
        )
        return {tool.name for tool in tools.tools}, found


def test_mcp_client_lists_the_tools_and_gets_search_results(runtime: Any) -> None:
    names, found = asyncio.run(_list_and_search(runtime.url, runtime.secret))
    assert {"search_documents", "ask"} <= names
    assert not found.is_error
    passages = found.structured_content["result"]
    assert len(passages) == 2
    assert passages[0]["source"] == "05-motion-artefacts.md"
    assert {"source", "chunk_id", "score", "text"} <= set(passages[0])


async def _search(url: str, secret: str, query: Any) -> Any:
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {secret}"})
    async with http, Client(streamable_http_client(f"{url}/mcp", http_client=http)) as client:
        arguments = {"query": query, "collection_id": FNIRS_COLLECTION_ID, "top_k": 1}
        return await client.call_tool("search_documents", arguments)


@pytest.mark.parametrize(
    ("query", "says"),
    [("x" * (contract.MAX_QUERY_CHARS + 1), "at most"), ("", "query"), ("   ", "query")],
)
def test_search_documents_refuses_a_query_out_of_the_contracts_bounds(runtime: Any, query: str, says: str) -> None:
    found = asyncio.run(_search(runtime.url, runtime.secret, query))
    assert found.is_error
    assert says in found.content[0].text


def test_search_documents_takes_a_query_at_the_bound(runtime: Any) -> None:
    found = asyncio.run(_search(runtime.url, runtime.secret, "fNIRS " * (contract.MAX_QUERY_CHARS // 6)))
    assert not found.is_error
