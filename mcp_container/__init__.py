"""Dynavera's runtime: retrieval over ChromaDB and GPT4All generation behind an HTTP API (DESIGN.md §6)."""
