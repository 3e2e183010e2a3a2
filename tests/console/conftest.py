"""The console's browser tests: the built console served by a live stack's gateway, driven by
Playwright in Debian's Chromium (`make test` installs it when it is missing and it can)."""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from local.stack import Stack
from tests.conftest import Api, create_key, own_corpus

ROOT = Path(__file__).resolve().parents[2]
CONSOLE = ROOT / "console"
CHROMIUM = Path("/usr/bin/chromium")
# Chromium on a closed network: no calls home, no GPU, no sandbox as root.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def console_dist() -> Path:
    """The built console; built here when missing (make test builds it when out of date)."""
    index = CONSOLE / "dist" / "index.html"
    if not index.exists():
        if shutil.which("npm") is None:
            pytest.skip("the console is not built and npm is missing (Node.js 20+ and npm are prerequisites)")
        if not (CONSOLE / "node_modules").exists():
            subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=CONSOLE, check=True)
        subprocess.run(["npm", "run", "build"], cwd=CONSOLE, check=True)
    return index.parent


# Package scope: Playwright's sync API keeps an event loop running in this thread while it is
# open, and later suites call asyncio.run().
@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip("no /usr/bin/chromium (make test installs Debian's chromium when run as root)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture(scope="session")
def console_key(live_stack: Stack, console_dist: Path) -> str:
    """The console user's key; the user owns a collection `fnirs` holding the shipped corpus,
    uploaded through the API, so their agents may name it and cite it."""
    key = create_key(live_stack, f"console-{uuid.uuid4().hex[:6]}")
    own_corpus(live_stack, key)
    return key


@pytest.fixture(scope="session")
def console_api(live_stack: Stack, console_key: str) -> Api:
    return Api(live_stack, console_key)


@pytest.fixture
def context(browser: Any, live_stack: Stack) -> Iterator[Any]:
    context = browser.new_context(base_url=live_stack.api_url, viewport={"width": 1360, "height": 900})
    context.set_default_timeout(30_000)
    yield context
    context.close()


@pytest.fixture
def signed_in(context: Any, console_key: str) -> Any:
    """A page signed in through the sign-in form."""
    page = context.new_page()
    page.goto("/console/")
    page.get_by_label("API key", exact=True).fill(console_key)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Agents", exact=True).wait_for()
    return page


@pytest.fixture
def started(console_api: Api) -> Iterator[list[str]]:
    """Executions a test started: any still running at its end is stopped, so the next test's
    runs do not queue behind it on the one runtime."""
    ids: list[str] = []
    yield ids
    for execution_id in ids:
        response = console_api.post(f"/executions/{execution_id}/stop")
        assert response.status_code in (202, 409), response.text
