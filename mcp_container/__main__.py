"""`python -m mcp_container` serves the runtime."""

from mcp_container.server import main

main()
