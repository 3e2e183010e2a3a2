"""The console under its security headers (local/console.py, as CloudFront sends them): every
page works in Chromium with no Content-Security-Policy violation, listened for in the page
(`securitypolicyviolation`) and in the browser's console."""

from __future__ import annotations

import uuid
from typing import Any

from playwright.sync_api import expect

from tests.conftest import Api

# The machine is shared with other suites: API calls can take seconds.
expect.set_options(timeout=15_000)

# Set before any script of the page runs, so a violation during start-up is caught too.
LISTEN = """
window.__violations = [];
document.addEventListener('securitypolicyviolation', (e) => window.__violations.push(
  `${e.violatedDirective} blocked ${e.blockedURI || 'inline'} (${e.sourceFile}:${e.lineNumber})`));
"""


def test_every_page_works_with_no_csp_violation(context: Any, console_key: str, console_api: Api) -> None:
    body = {"name": f"csp-{uuid.uuid4().hex[:6]}", "config": {"max_tokens": 8}}
    agent = console_api.post("/agents", json=body).json()
    query = {"input_data": {"query": "What is fNIRS?"}}
    execution_id = console_api.post(f"/agents/{agent['agent_id']}/executions", json=query).json()["execution_id"]
    context.add_init_script(LISTEN)
    page = context.new_page()
    reported: list[str] = []
    page.on("console", lambda m: reported.append(m.text) if "Content Security Policy" in m.text else None)
    try:
        page.goto("/console/")
        page.get_by_label("API key").fill(console_key)
        page.get_by_role("button", name="Sign in").click()
        page.get_by_role("heading", name="Agents", exact=True).wait_for()
        headings = {
            "/console/agents": "Agents",
            "/console/agents/new": "New agent",
            f"/console/agents/{agent['agent_id']}": agent["name"],
            f"/console/agents/{agent['agent_id']}/edit": f"Edit {agent['name']}",
            f"/console/executions/{execution_id}": None,
            "/console/keys": "API keys",
            "/console/no-such-page": None,
        }
        for path, heading in headings.items():
            page.goto(path)
            if heading:
                expect(page.get_by_role("heading", name=heading).first).to_be_visible()
            page.wait_for_load_state("networkidle")
            violations = page.evaluate("window.__violations")
            assert not violations and not reported, (path, violations, reported)
        # The live socket is allowed too: the execution page followed the run over it.
        page.goto(f"/console/executions/{execution_id}")
        expect(page.get_by_test_id("status")).to_have_text("completed", timeout=120_000)
        assert not page.evaluate("window.__violations") and not reported
        # And the listener hears a violation when there is one: an inline style is refused.
        page.evaluate("document.head.append(Object.assign(document.createElement('style'), {textContent: 'p{}'}))")
        assert page.wait_for_function("window.__violations.length > 0")
    finally:
        console_api.post(f"/executions/{execution_id}/stop")
        page.close()
