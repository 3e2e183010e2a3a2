"""The console's second pass in a real Chromium against the real local stack: the runs list,
a run's figures, collections, a phone-sized screen in light and dark, and the failure paths
(a dead link, a refused key, a vanished agent or run)."""

from __future__ import annotations

import json
import re
import time
import uuid
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.conftest import Api
from tests.console.test_console import make_agent, run_from_agent_page

expect.set_options(timeout=15_000)
PHONE = {"width": 390, "height": 844}


def start(api: Api, agent_id: str, query: str, started: list[str]) -> str:
    """A run the test's end stops if it still goes on."""
    started.append(api.started(agent_id, query))
    return started[-1]


def test_the_runs_list_finds_a_run_by_text_on_the_server(signed_in: Any, console_api: Api, started: list[str]) -> None:
    agent = make_agent(console_api, f"Runs {uuid.uuid4().hex[:6]}", max_tokens=8)
    marker = uuid.uuid4().hex[:8]
    wanted = start(console_api, agent["agent_id"], f"What is fNIRS? ({marker})", started)
    start(console_api, agent["agent_id"], "Something unrelated", started)
    page = signed_in
    page.get_by_role("link", name="Runs", exact=True).click()
    expect(page.get_by_role("heading", name="Runs", exact=True)).to_be_focused()
    page.get_by_label("Search questions", exact=True).fill(marker.upper())
    page.get_by_role("button", name="Search", exact=True).click()
    rows = page.get_by_test_id("run-row")
    expect(rows).to_have_count(1)
    # Time to the second, status and duration (the model may not have answered yet, on a busy machine).
    expect(rows.first).to_contain_text(re.compile(r"\d{1,2}:\d{2}:\d{2}"))
    expect(rows.first).to_contain_text(re.compile(r"took (—|\d)"))
    expect(rows.first.get_by_test_id("status")).to_have_text(re.compile(r"^(pending|running|completed|failed|stopped)$"))
    assert "q=" in page.url
    page.get_by_label("Search questions", exact=True).fill(f"absent-{marker}")
    page.get_by_role("button", name="Search", exact=True).click()
    expect(page.get_by_text("No run matches these filters.")).to_be_visible()
    rows.first.wait_for(state="detached")
    page.go_back()
    page.reload()
    expect(rows).to_have_count(1)
    rows.first.get_by_role("link").click()
    expect(page).to_have_url(re.compile(f"/console/executions/{wanted}$"))


def test_a_runs_figures_and_settings_appear(signed_in: Any, console_api: Api, started: list[str]) -> None:
    agent = make_agent(console_api, f"Figures {uuid.uuid4().hex[:6]}", max_tokens=24)
    page = signed_in
    run_from_agent_page(page, agent["agent_id"], "What does fNIRS measure?", started)
    expect(page.get_by_test_id("status")).to_have_text("completed", timeout=240_000)
    for figure in ("elapsed", "queued", "ttft", "retrieval", "generation"):
        expect(page.get_by_test_id(figure)).to_have_text(re.compile(r"^\d+(\.\d)? (ms|s)$|^\d+ min \d\d s$"))
    expect(page.get_by_test_id("tokens-per-second")).to_have_text(re.compile(r"^\d+\.\d$"))
    expect(page.get_by_test_id("run-config")).to_contain_text("24 tokens")
    # A source opens in full, and an event's whole text is reachable by keyboard.
    page.get_by_role("button", name=re.compile("^Show the whole passage of source 1")).click()
    expect(page.get_by_role("button", name=re.compile("^Show less"))).to_have_attribute("aria-expanded", "true")
    # The log keeps only the rows in view; with the token rows hidden, the first event is one.
    page.get_by_label("Show token events", exact=True).uncheck()
    log_button = page.get_by_role("button", name=re.compile(r"^Event 1: Started"))
    log_button.focus()
    page.keyboard.press("Enter")
    expect(page.get_by_test_id("event-detail")).to_contain_text("#1 Started")


def test_a_dead_link_says_so_within_ten_seconds(context: Any, console_key: str) -> None:
    """The socket stops answering (frames vanish both ways, nothing closes): the header leaves
    "Live" within ~10 s and the console reconnects."""
    connections: list[Any] = []

    def relay(ws: Any) -> None:
        server = ws.connect_to_server()
        connections.append(ws)
        dead = len(connections) == 1

        def to_server(message: str | bytes) -> None:
            if not dead:
                server.send(message)

        ws.on_message(to_server)
        server.on_message(lambda message: None if dead else ws.send(message))

    page = context.new_page()
    page.route_web_socket(re.compile(r"/ws\?token="), relay)
    page.add_init_script(f"localStorage.setItem('dynavera.apiKey', {json.dumps(console_key)})")
    page.goto("/console/agents")
    indicator = page.get_by_test_id("connection")
    expect(indicator).to_contain_text("Live")
    page.evaluate(
        """() => {
            window.__connection = [];
            const seen = () => {
                const text = document.querySelector('[data-testid=connection]')?.textContent.trim();
                if (text && window.__connection.at(-1) !== text) window.__connection.push(text);
            };
            new MutationObserver(seen).observe(document.body, { subtree: true, childList: true, characterData: true });
        }"""
    )
    began = time.monotonic()
    page.wait_for_function("() => window.__connection.some((t) => t.startsWith('Reconnecting'))", timeout=12_000)
    assert time.monotonic() - began < 11
    expect(indicator).to_contain_text(re.compile("Live|Reconnected"), timeout=20_000)
    assert len(connections) >= 2


def test_a_refused_key_returns_to_sign_in_with_a_message(context: Any) -> None:
    page = context.new_page()
    page.add_init_script("localStorage.setItem('dynavera.apiKey', 'dv_revoked-or-never-valid')")
    page.goto("/console/runs")
    expect(page).to_have_url(re.compile(r"/console/sign-in"))
    expect(page.get_by_role("alert")).to_contain_text("no longer accepts your key")
    expect(page.get_by_label("API key", exact=True)).to_be_visible()


def test_a_vanished_agent_or_run_says_so_with_a_way_back(signed_in: Any, console_api: Api) -> None:
    agent = make_agent(console_api, f"Vanishing {uuid.uuid4().hex[:6]}")
    page = signed_in
    page.goto(f"/console/agents/{agent['agent_id']}")
    expect(page.get_by_role("heading", name=agent["name"])).to_be_visible()
    assert console_api.delete(f"/agents/{agent['agent_id']}").status_code == 204
    # Deleted in another tab: the next action says what happened and offers the way back.
    page.get_by_label("Question", exact=True).fill("Anyone there?")
    page.get_by_role("button", name="Run", exact=True).click()
    expect(page.get_by_role("heading", name="This agent no longer exists")).to_be_visible()
    page.get_by_role("link", name="back to your agents").click()
    expect(page.get_by_role("heading", name="Agents", exact=True)).to_be_visible()

    page.goto(f"/console/executions/{uuid.uuid4()}")
    expect(page.get_by_role("heading", name="Run not found")).to_be_visible()
    page.get_by_role("link", name="See all your runs").click()
    expect(page.get_by_role("heading", name="Runs", exact=True)).to_be_visible()


def page_paths(api: Api, started: list[str]) -> list[str]:
    agent = make_agent(api, f"Phone agent with a rather long name {uuid.uuid4().hex[:6]}", max_tokens=8)
    execution_id = start(api, agent["agent_id"], "What is fNIRS, in a sentence that is long enough to wrap?", started)
    collection = []
    if "/collections" in api.get("/openapi.json").json()["paths"]:
        made = api.post("/collections", json={"name": f"phone-{uuid.uuid4().hex[:6]}"})
        assert made.status_code == 201, made.text
        collection = [f"/console/collections/{made.json()['collection_id']}"]
    return [
        *collection,
        "/console/agents",
        f"/console/agents/{agent['agent_id']}",
        f"/console/agents/{agent['agent_id']}/edit",
        "/console/agents/new",
        "/console/runs",
        "/console/collections",
        f"/console/executions/{execution_id}",
    ]


REACHABLE = """() => {
    const root = document.documentElement;
    const width = root.clientWidth;
    const problems = [];
    if (root.scrollWidth > width) problems.push(`page scrolls sideways: ${root.scrollWidth} > ${width}`);
    const controls = 'a[href], button, input:not(.visually-hidden), select, textarea, summary';
    for (const el of document.querySelectorAll(controls)) {
        const style = getComputedStyle(el);
        if (style.visibility === 'hidden' || style.display === 'none') continue;
        if (el.closest('.visually-hidden, .skip-link')) continue;
        // WCAG 2.5.8 exempts a link inside a sentence; it is sized by the text around it.
        if (style.display === 'inline' && el.closest('p, [data-testid=answer]')) continue;
        // A checkbox's target is its whole label.
        const target = el.type === 'checkbox' && el.closest('label') ? el.closest('label') : el;
        const box = target.getBoundingClientRect();
        if (box.width === 0 && box.height === 0) continue;
        const name = (el.getAttribute('aria-label') || el.textContent || el.id || el.tagName).trim().slice(0, 40);
        if (box.left < -1 || box.right > width + 1) problems.push(`${name} is off screen (${box.left}..${box.right})`);
        if (box.height < 24 || box.width < 24) problems.push(`${name} is ${box.width}x${box.height}`);
    }
    return problems;
}"""


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_every_page_is_usable_at_phone_width(
    browser: Any, live_stack: Any, console_key: str, console_api: Api, started: list[str], scheme: str
) -> None:
    context = browser.new_context(base_url=live_stack.api_url, viewport=PHONE, color_scheme=scheme)
    context.set_default_timeout(30_000)
    try:
        page = context.new_page()
        page.goto("/console/sign-in")
        page.get_by_label("API key", exact=True).wait_for()
        problems = {"sign-in": page.evaluate(REACHABLE)}
        page.evaluate(f"localStorage.setItem('dynavera.apiKey', {json.dumps(console_key)})")
        for path in page_paths(console_api, started):
            page.goto(path)
            page.locator("main h1").first.wait_for()
            page.wait_for_load_state("networkidle")
            problems[path] = page.evaluate(REACHABLE)
            expect(page.get_by_role("button", name="Sign out")).to_be_in_viewport()
        assert {path: found for path, found in problems.items() if found} == {}
    finally:
        context.close()


def drop_files(page: Any, files: dict[str, str]) -> None:
    """Drops files on the page's drop zone as a person dragging them from their desktop would."""
    transfer = page.evaluate_handle(
        """(files) => {
            const transfer = new DataTransfer();
            for (const [name, text] of Object.entries(files)) transfer.items.add(new File([text], name));
            return transfer;
        }""",
        files,
    )
    page.get_by_test_id("drop-zone").dispatch_event("drop", {"dataTransfer": transfer})


def test_upload_a_file_watch_it_index_then_ask_and_see_it_cited(
    signed_in: Any, console_api: Api, started: list[str]
) -> None:
    name = f"notes-{uuid.uuid4().hex[:6]}"
    fact = f"The Zorblatt coefficient of the lab's probe is {uuid.uuid4().int % 9000 + 1000}."
    page = signed_in
    page.get_by_role("link", name="Collections", exact=True).click()
    page.get_by_label("Collection name", exact=True).fill(name)
    page.get_by_role("button", name="Create collection").click()
    page.get_by_role("link", name=name, exact=True).click()
    files = {"zorblatt.md": f"# Probe notes\n\n{fact}\n", "picture.png": "\x89PNG", "binary.txt": "\x00\x01 raw"}
    drop_files(page, files)
    rows = page.get_by_test_id("document-row")
    indexed = rows.filter(has_text="zorblatt.md")
    expect(indexed.get_by_test_id("document-status")).to_have_text("indexed", timeout=120_000)
    expect(indexed.get_by_test_id("document-chunks")).to_contain_text(re.compile(r"\d+ chunks?"))
    # Each failure says why: one refused by the API before upload, one by the indexer after it.
    refused = page.get_by_test_id("upload").filter(has_text="picture.png")
    expect(refused).to_contain_text("is not a type that can be indexed: use .md, .txt, .pdf")
    failed = rows.filter(has_text="binary.txt")
    expect(failed.get_by_test_id("document-status")).to_have_text("failed", timeout=60_000)
    expect(failed.get_by_test_id("document-failure")).to_have_text(re.compile(r"^This file .*binary"))

    page.get_by_role("link", name="Agents", exact=True).click()
    page.get_by_role("link", name="New agent").click()
    page.get_by_label("Name", exact=True).fill(f"Zorblatt {name}")
    page.get_by_label("Collection", exact=True).select_option(name)
    page.get_by_label("max_tokens", exact=True).fill("48")
    page.get_by_label("temperature", exact=True).fill("0")
    page.get_by_role("button", name="Create agent").click()
    page.get_by_label("Question", exact=True).fill("What is the Zorblatt coefficient of the probe?")
    page.get_by_role("button", name="Run", exact=True).click()
    page.wait_for_url(re.compile(r"/console/executions/"))
    started.append(page.url.rsplit("/", 1)[-1])
    expect(page.get_by_test_id("status")).to_have_text("completed", timeout=120_000)
    expect(page.get_by_test_id("source").first).to_contain_text("zorblatt.md")

    # The collection cannot go while the agent names it, and the console says why.
    page.get_by_role("link", name="Collections", exact=True).click()
    page.get_by_role("button", name=f"Delete {name}").click()
    page.get_by_role("button", name="Delete it and its documents").click()
    expect(page.get_by_role("alert")).to_contain_text(f"Zorblatt {name}")
