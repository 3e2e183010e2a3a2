"""The runtime's Model Context Protocol tools, served at /mcp over streamable HTTP."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from mcp.server import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

import contract
from mcp_container.execution import ExecuteRequest, InvalidRequest, run_execution
from mcp_container.runtime import Runtime
from mcp_container.scheduler import QueueFull
from mcp_container.store import StoreUnreachable

TOP_K = contract.NUMBERS["top_k"][2]


def create_mcp_server(runtime: Runtime) -> MCPServer:
    server = MCPServer(
        "dynavera-runtime",
        instructions="Search Dynavera's document collections, or ask a question answered from them with sources.",
    )

    def require_ready() -> None:
        if not runtime.ready:
            raise ToolError("the runtime is still loading its model; try again in a few seconds")

    @server.tool()
    async def search_documents(
        query: str, collection_id: str, top_k: int = TOP_K
    ) -> list[dict[str, Any]]:
        """Find the passages of a document collection (by its id) closest in meaning to the query."""
        require_ready()
        try:
            # The same bounds as /execute's query: an unbounded one would be embedded whole.
            contract.check_query(query)
            contract.check_collection_id(collection_id)
            contract.check_config({"top_k": top_k}, contract.default_config())
        except contract.ContractError as error:
            raise ToolError(str(error)) from None
        try:
            passages = await asyncio.to_thread(runtime.engine.retrieve, query, collection_id, top_k)
        except StoreUnreachable as error:
            raise ToolError(str(error)) from None
        return [p.to_dict() for p in passages]

    @server.tool()
    async def ask(query: str, collection_id: str | None = None) -> dict[str, Any]:
        """Answer a question from a document collection (its id; none: from the question alone), with sources."""
        require_ready()
        try:
            request = ExecuteRequest.parse(
                {"execution_id": f"mcp-{uuid.uuid4()}", "query": query, "config": {"collection_id": collection_id}}
            )
            job = runtime.scheduler.admit(request.execution_id)
        except (InvalidRequest, QueueFull) as error:
            raise ToolError(str(error)) from None
        async for event in run_execution(runtime.engine, runtime.scheduler, job, request):
            if event["type"] == "result":
                return event["output"]
            if event["type"] == "error":
                raise ToolError(event["message"])
        raise ToolError("the execution was cancelled")

    return server
