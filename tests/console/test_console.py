"""The console end to end: a real Chromium against the real local stack (gateway, poller,
runtime with the real model), doing what a person does."""

from __future__ import annotations

import json
import re
import time
from typing import Any

from playwright.sync_api import expect

from tests.conftest import Api

TERMINAL = re.compile(r"^(completed|failed|stopped)$")
# The machine is shared with other suites: API calls can take seconds.
expect.set_options(timeout=15_000)


def make_agent(api: Api, name: str, **config: Any) -> dict[str, Any]:
    body = {"name": name, "config": {"collection": "fnirs", "temperature": 0, **config}}
    response = api.post("/agents", json=body)
    response.raise_for_status()
    return response.json()


def rest_events(api: Api, execution_id: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    after: int | None = 0
    while after is not None:
        page = api.get(f"/executions/{execution_id}/events", params={"after": after, "limit": 100}).json()
        events += page["events"]
        after = page["next_after"]
    return events


def stop_if_running(api: Api, execution_id: str) -> None:
    """Ends a run the test no longer needs; one that already finished answers 409."""
    response = api.post(f"/executions/{execution_id}/stop")
    assert response.status_code in (202, 409), response.text


def run_from_agent_page(page: Any, agent_id: str, question: str, started: list[str]) -> str:
    page.goto(f"/console/agents/{agent_id}")
    page.get_by_label("Question", exact=True).fill(question)
    page.get_by_label("Question", exact=True).press("Control+Enter")
    page.wait_for_url(re.compile(r"/console/executions/[0-9a-f-]{36}$"))
    started.append(page.url.rsplit("/", 1)[-1])
    return started[-1]


def record_status_texts(page: Any) -> None:
    """Keep every text the status badge shows, however briefly."""
    page.evaluate(
        """() => {
            window.__statuses = [];
            const seen = () => {
                const el = document.querySelector('[data-testid=status]');
                const text = el && el.textContent.trim();
                if (text && window.__statuses.at(-1) !== text) window.__statuses.push(text);
            };
            seen();
            new MutationObserver(seen).observe(document.body, { subtree: true, childList: true, characterData: true });
        }"""
    )


def test_wrong_key_is_refused_and_a_right_key_stays_signed_in(context: Any, console_key: str) -> None:
    page = context.new_page()
    page.goto("/console/agents")
    expect(page).to_have_url(re.compile(r"/console/sign-in"))
    page.get_by_label("API key", exact=True).fill("dv_not-a-real-key")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("not accepted")
    page.get_by_label("API key", exact=True).fill(console_key)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Agents", exact=True)).to_be_visible()
    expect(page).to_have_url(re.compile(r"/console/agents$"))
    page.reload()
    expect(page.get_by_role("heading", name="Agents", exact=True)).to_be_visible()
    assert console_key not in page.url
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_label("API key", exact=True)).to_be_visible()
    assert page.evaluate("localStorage.getItem('dynavera.apiKey')") is None


def test_create_an_agent_with_field_errors_then_run_a_question(
    signed_in: Any, console_api: Api, started: list[str]
) -> None:
    page = signed_in
    page.get_by_role("link", name="New agent").click()
    page.get_by_label("Name", exact=True).fill("Console fNIRS")
    page.get_by_label("Collection", exact=True).select_option("fnirs")
    page.get_by_label("top_k", exact=True).fill("99")
    page.get_by_role("button", name="Create agent").click()
    expect(page.locator("#agent-top-k-error")).to_contain_text("top_k")
    expect(page.get_by_label("top_k", exact=True)).to_have_attribute("aria-invalid", "true")
    page.get_by_label("top_k", exact=True).fill("3")
    page.get_by_label("max_tokens", exact=True).fill("64")
    page.get_by_label("temperature", exact=True).fill("0")
    page.get_by_role("button", name="Create agent").click()
    expect(page.get_by_role("heading", name="Console fNIRS")).to_be_visible()

    page.get_by_label("Question", exact=True).fill("What does fNIRS measure?")
    page.get_by_role("button", name="Run", exact=True).click()
    page.wait_for_url(re.compile(r"/console/executions/"))
    started.append(page.url.rsplit("/", 1)[-1])
    record_status_texts(page)
    status = page.get_by_test_id("status")
    expect(status).to_have_text("completed", timeout=120_000)
    expect(page.get_by_test_id("answer")).not_to_be_empty()
    expect(page.get_by_test_id("source").first).to_be_visible()
    expect(page.get_by_test_id("source").first).to_contain_text(re.compile(r"\d\.\d{3}"))
    log = page.get_by_test_id("event-log")
    expect(log).to_contain_text("Completed")
    # The log keeps only the rows in view (it follows the tail); without the token rows the
    # whole lifecycle fits.
    page.get_by_label("Show token events", exact=True).uncheck()
    expect(log).to_contain_text("Started")
    expect(log).to_contain_text("[PROGRESS]")
    expect(log).to_contain_text("Completed")
    expect(log).not_to_contain_text("[TOKEN]")
    page.get_by_label("Show token events", exact=True).check()

    execution_id = page.url.rsplit("/", 1)[-1]
    events = rest_events(console_api, execution_id)
    expect(page.get_by_test_id("event-count")).to_have_text(str(len(events)))
    answer = console_api.get(f"/executions/{execution_id}").json()["output_data"]["answer"]
    expect(page.get_by_test_id("answer")).to_have_text(answer)
    # Every [n] that names a source links to it.
    for link in page.locator("a.cite").all():
        assert re.fullmatch(r"#source-\d+", link.get_attribute("href") or "")

    # The agents list finds it by name, and the history lists the run.
    page.get_by_role("link", name="Agents", exact=True).first.click()
    page.get_by_label("Filter agents by name", exact=True).fill("console fnirs")
    expect(page.get_by_test_id("agent-row")).to_have_count(1)
    page.get_by_role("link", name="Console fNIRS").click()
    expect(page.get_by_test_id("history-row").first).to_contain_text("What does fNIRS measure?")


def test_stop_shows_stopping_until_the_run_is_stopped(signed_in: Any, console_api: Api, started: list[str]) -> None:
    agent = make_agent(console_api, "Console long", max_tokens=2048)
    page = signed_in
    run_from_agent_page(
        page, agent["agent_id"], "Write a very long essay on near-infrared spectroscopy and its history.", started
    )
    record_status_texts(page)
    expect(page.get_by_test_id("status")).to_have_text("running", timeout=60_000)
    page.keyboard.press("Escape")
    expect(page.get_by_test_id("status")).to_have_text("stopped", timeout=30_000)
    statuses = page.evaluate("window.__statuses")
    assert "stopping…" in statuses, statuses
    assert statuses.index("stopping…") < statuses.index("stopped")
    expect(page.get_by_test_id("event-log")).to_contain_text("Stopped")
    assert console_api.get(f"/executions/{page.url.rsplit('/', 1)[-1]}").json()["status"] == "stopped"


def test_reload_mid_run_resumes_with_the_whole_log(signed_in: Any, console_api: Api, started: list[str]) -> None:
    agent = make_agent(console_api, "Console reload", max_tokens=2048)
    page = signed_in
    execution_id = run_from_agent_page(
        page, agent["agent_id"], "Explain fNIRS signal processing in great detail.", started
    )
    count = page.get_by_test_id("event-count")
    expect(count).not_to_have_text(re.compile(r"^[0-2]$"), timeout=60_000)
    page.reload()
    # The model may end its answer early; while the run goes on, new events arrive live.
    status = page.get_by_test_id("status")
    expect(status).to_have_text(re.compile(r"^(running|completed|failed|stopped)$"))
    held = int(count.inner_text())
    deadline = time.monotonic() + 60
    while status.inner_text() == "running" and int(count.inner_text()) <= held and time.monotonic() < deadline:
        page.wait_for_timeout(100)
    stop_if_running(console_api, execution_id)
    expect(page.get_by_test_id("status")).to_have_text(TERMINAL, timeout=30_000)
    events = rest_events(console_api, execution_id)
    expect(count).to_have_text(str(len(events)))
    expect(page.get_by_role("heading", name=re.compile(r"^Event log"))).to_contain_text(str(len(events)))
    exported = export_ndjson(page)
    assert [e["seq"] for e in exported] == [e["seq"] for e in events]


def export_ndjson(page: Any) -> list[dict[str, Any]]:
    """The exported events; the export's first line, the execution's record, is checked here."""
    with page.expect_download() as info:
        page.get_by_role("button", name="Export NDJSON").click()
    path = info.value.path()
    with open(path, encoding="utf-8") as lines:
        record, *events = [json.loads(line) for line in lines if line.strip()]
    assert record["execution_id"] == page.url.rsplit("/", 1)[-1]
    assert {"input_data", "config", "status"} <= set(record)
    return events


def assert_exports(page: Any, stored: list[dict[str, Any]]) -> None:
    """The page's NDJSON export is the stored log; the terminal event is re-read from REST
    right after its frame, so allow that moment."""
    deadline = time.monotonic() + 10
    while (exported := export_ndjson(page)) != stored and time.monotonic() < deadline:
        page.wait_for_timeout(200)
    assert exported == stored


def test_a_second_tab_on_the_execution_url_sees_the_same_events(
    signed_in: Any, context: Any, console_api: Api, started: list[str]
) -> None:
    agent = make_agent(console_api, "Console tabs", max_tokens=256)
    first = signed_in
    execution_id = run_from_agent_page(first, agent["agent_id"], "How does fNIRS compare with fMRI?", started)
    second = context.new_page()
    second.goto(f"/console/executions/{execution_id}")
    for page in (first, second):
        expect(page.get_by_test_id("status")).to_have_text(TERMINAL, timeout=120_000)
    stored = rest_events(console_api, execution_id)
    # The first tab saw the live frames, the second loaded the log over REST: both hold the stored events.
    assert_exports(first, stored)
    assert_exports(second, stored)
    assert first.get_by_test_id("answer").inner_text() == second.get_by_test_id("answer").inner_text()


def test_invalid_json_input_is_refused_before_anything_is_sent(
    signed_in: Any, console_api: Api, started: list[str]
) -> None:
    agent = make_agent(console_api, "Console json")
    page = signed_in
    page.goto(f"/console/agents/{agent['agent_id']}")
    sent: list[str] = []
    page.on("request", lambda request: sent.append(request.url) if request.method == "POST" else None)
    page.get_by_label("Question", exact=True).fill("What is fNIRS?")
    page.get_by_label("Add JSON input", exact=True).check()
    page.get_by_role("textbox", name="JSON input").fill('{"language": }')
    page.get_by_role("button", name="Run", exact=True).click()
    expect(page.locator("#run-json-error")).to_contain_text("not valid JSON")
    expect(page.get_by_role("textbox", name="JSON input")).to_have_attribute("aria-invalid", "true")
    assert sent == []
    assert console_api.get(f"/agents/{agent['agent_id']}/executions").json()["executions"] == []
    page.get_by_role("textbox", name="JSON input").fill('{"language": "en"}')
    page.get_by_role("button", name="Run", exact=True).click()
    page.wait_for_url(re.compile(r"/console/executions/"))
    started.append(page.url.rsplit("/", 1)[-1])
    execution = console_api.get(f"/executions/{page.url.rsplit('/', 1)[-1]}").json()
    assert execution["input_data"] == {"language": "en", "query": "What is fNIRS?"}
    # The key the agent does not read is not silently dropped: the run's page says where it went.
    expect(page.get_by_test_id("other-input")).to_contain_text("language")
    expect(page.get_by_test_id("other-input")).to_contain_text("the agent reads only the question")


def test_a_dropped_socket_reconnects_and_resumes_without_loss_or_doubles(
    context: Any, console_key: str, console_api: Api, started: list[str]
) -> None:
    """The browser's socket is cut mid-run (the server side stays up): the console reconnects,
    says so, resubscribes from the last seq it holds, and ends with exactly the stored log."""
    agent = make_agent(console_api, "Console drop", max_tokens=2048)
    connections: list[dict[str, Any]] = []

    def relay(ws: Any) -> None:
        server = ws.connect_to_server()
        state: dict[str, Any] = {"sent": [], "cut": False}
        connections.append(state)

        def to_server(message: str | bytes) -> None:
            state["sent"].append(json.loads(message))
            server.send(message)

        def to_page(message: str | bytes) -> None:
            frame = json.loads(message)
            ws.send(message)
            # Cut once, on the first connection, after an event the page already holds one before.
            if len(connections) == 1 and frame.get("seq", 0) >= 2 and not state["cut"]:
                state["cut"] = True
                ws.close(code=4000, reason="cut by the test")
                server.close()

        ws.on_message(to_server)
        server.on_message(to_page)

    page = context.new_page()
    page.route_web_socket(re.compile(r"/ws\?token="), relay)
    page.add_init_script(f"localStorage.setItem('dynavera.apiKey', {json.dumps(console_key)})")
    execution_id = run_from_agent_page(
        page, agent["agent_id"], "Describe every component of an fNIRS system at length.", started
    )
    expect(page.get_by_text(re.compile(r"Reconnected — resumed from event \d+"))).to_be_visible(timeout=60_000)
    expect(page.get_by_test_id("connection")).to_contain_text(re.compile("Live|Reconnected"))
    resumed = [f for f in connections[1]["sent"] if f.get("action") == "subscribe"]
    assert resumed and resumed[0]["execution_id"] == execution_id and resumed[0]["after"] >= 1
    count = page.get_by_test_id("event-count")
    deadline = time.monotonic() + 60
    while int(count.inner_text()) <= resumed[0]["after"] and time.monotonic() < deadline:
        page.wait_for_timeout(100)
    stop_if_running(console_api, execution_id)
    expect(page.get_by_test_id("status")).to_have_text(TERMINAL, timeout=30_000)
    stored = rest_events(console_api, execution_id)
    assert [e["seq"] for e in export_ndjson(page)] == [e["seq"] for e in stored]


def test_edit_rerun_filter_history_and_delete_an_agent(signed_in: Any, console_api: Api, started: list[str]) -> None:
    agent = make_agent(console_api, "Console edit", max_tokens=16)
    page = signed_in
    page.goto(f"/console/agents/{agent['agent_id']}")
    page.get_by_role("link", name="Edit").click()
    page.get_by_label("Collection", exact=True).select_option("fnirs")
    page.get_by_label("Name", exact=True).fill("Console edited")
    page.get_by_role("button", name="Save changes").click()
    expect(page.get_by_role("heading", name="Console edited")).to_be_visible()

    first = run_from_agent_page(page, agent["agent_id"], "What is a hemodynamic response?", started)
    expect(page.get_by_test_id("status")).to_have_text("completed", timeout=120_000)
    # Re-run opens the form filled with the run's question and settings, to change before running.
    page.get_by_role("button", name="Re-run").click()
    expect(page.get_by_label("Question", exact=True)).to_have_value("What is a hemodynamic response?")
    expect(page.get_by_label("max_tokens for this run", exact=True)).to_have_value("16")
    page.get_by_label("max_tokens for this run", exact=True).fill("8")
    page.get_by_role("button", name="Run", exact=True).click()
    page.wait_for_url(re.compile(r"/console/executions/(?!" + first + ")"))
    second = page.url.rsplit("/", 1)[-1]
    started.append(second)
    expect(page.get_by_test_id("status")).to_have_text("completed", timeout=120_000)
    expect(page.get_by_test_id("run-config")).to_contain_text("8 tokens")
    rerun = console_api.get(f"/executions/{second}").json()
    assert rerun["input_data"] == {"query": "What is a hemodynamic response?"}
    assert rerun["config"]["max_tokens"] == 8
    assert console_api.get(f"/agents/{agent['agent_id']}").json()["config"]["max_tokens"] == 16

    page.get_by_role("navigation", name="Breadcrumb").get_by_role("link", name="Console edited").click()
    rows = page.get_by_test_id("history-row")
    expect(rows).to_have_count(2)
    expect(rows.first.get_by_role("link")).to_have_attribute("href", f"/console/executions/{second}")
    page.get_by_label("Status", exact=True).select_option("failed")
    expect(rows).to_have_count(0)
    page.get_by_label("Status", exact=True).select_option("completed")
    expect(rows).to_have_count(2)

    page.get_by_role("button", name="Delete", exact=True).click()
    page.get_by_role("button", name="Delete agent").click()
    expect(page.get_by_role("heading", name="Agents", exact=True)).to_be_visible()
    assert console_api.get(f"/agents/{agent['agent_id']}").status_code == 404


CONTROLS = "button, a[href], input, select, textarea, [tabindex='0']"


def assert_every_control_named(page: Any) -> None:
    controls = page.locator(CONTROLS)
    assert controls.count() > 0
    for i in range(controls.count()):
        control = controls.nth(i)
        if control.is_visible():
            expect(control).to_have_accessible_name(re.compile(r"\S"))


def test_keyboard_only_with_named_controls_and_a_polite_status(
    context: Any, console_key: str, console_api: Api, started: list[str]
) -> None:
    agent = make_agent(console_api, "Console keyboard", max_tokens=16)
    page = context.new_page()
    page.goto("/console/")
    page.get_by_label("API key", exact=True).focus()
    page.keyboard.type(console_key)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Agents", exact=True)).to_be_visible()
    assert_every_control_named(page)

    page.goto(f"/console/agents/{agent['agent_id']}")
    expect(page.get_by_role("heading", name="Console keyboard")).to_be_visible()
    assert_every_control_named(page)
    page.get_by_label("Question", exact=True).focus()
    page.keyboard.type("What is fNIRS?")
    page.keyboard.press("Control+Enter")
    page.wait_for_url(re.compile(r"/console/executions/"))
    started.append(page.url.rsplit("/", 1)[-1])
    expect(page.get_by_test_id("status")).to_have_text("completed", timeout=120_000)
    announcer = page.get_by_test_id("announcer")
    expect(announcer).to_have_attribute("aria-live", "polite")
    expect(announcer).to_have_text("Execution completed.")
    assert_every_control_named(page)
    expect(page.get_by_role("log", name=re.compile("Event log"))).to_be_visible()
