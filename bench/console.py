"""The web console's figures, and its screenshots: gzip size of the build, page load to the
agents list on the local stack, and frames and long tasks while a 2,000-token answer streams.

    .venv/bin/python bench/console.py [--screenshots docs]

Needs the built console (make console), the prepared model (make model) and /usr/bin/chromium.
Starts its own stack on a stage of its own, with a Chroma server and an indexer, and uploads the
shipped corpus into its user's `fnirs` collection through the API, as `make run` does. The streaming figure
uses a scripted socket in the page: one frame per token, far more frames than the real server
sends (it writes what has arrived at most every 100 ms), so it is the console's worst case.
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import statistics
import subprocess
import sys
import tempfile
import uuid
from itertools import pairwise
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from local import endpoint
from local.corpus import upload_corpus
from local.stack import Stack, free_port
from tests.console.conftest import CHROMIUM, CHROMIUM_ARGS

DIST = ROOT / "console" / "dist"
TOKENS = 2000
AGENTS = [
    ("fNIRS assistant", "Answers questions on functional near-infrared spectroscopy from the demo corpus.", 256),
    ("Hemodynamics tutor", "Explains oxy- and deoxy-haemoglobin responses step by step, for students.", 512),
    ("Motion artefact triage", "Suggests how to detect and correct motion artefacts in raw fNIRS recordings.", 384),
    ("Literature scout", "Finds the passages that support a claim and cites them.", 192),
]
SLOW_QUESTION = (
    "Explain in detail how fNIRS measures brain activity, what the modified Beer-Lambert law says, "
    "and what limits the method."
)
SHORT_QUESTIONS = (
    "What does oxygenated haemoglobin do during activation?",
    "How are motion artefacts corrected?",
    "Which passages describe short-separation channels?",
)

# A scripted socket: on subscribe it streams TOKENS token frames, 10 every 20 ms (500 a second).
FAKE_SOCKET = (Path(__file__).parent / "fake_socket.js").read_text()

# When the first agent row appears, measured from navigation start.
AGENTS_SHOWN = """
(() => {
  const seen = () => {
    if (!window.__agentsAt && document.querySelector('[data-testid=agent-row]')) window.__agentsAt = performance.now();
  };
  new MutationObserver(seen).observe(document, { subtree: true, childList: true });
})();
"""


def bundle_sizes() -> dict[str, Any]:
    index = (DIST / "index.html").read_text()
    first = ["index.html", *re.findall(r'(?:src|href)="/console/(assets/[^"]+)"', index)]
    size = {
        p.relative_to(DIST).as_posix(): len(gzip.compress(p.read_bytes(), 9)) for p in DIST.rglob("*") if p.is_file()
    }
    return {
        "first load, gzip (KiB)": round(sum(size[name] for name in first) / 1024, 1),
        "whole build, gzip (KiB)": round(sum(size.values()) / 1024, 1),
        "files": len(size),
    }


def create_key(stack: Stack, user: str) -> str:
    done = subprocess.run(
        [str(ROOT / "dynavera"), "keys", "create", user], env=stack.env, capture_output=True, text=True, check=True
    )
    return done.stdout.strip().splitlines()[-1]


PHONE = {"width": 390, "height": 844}


def new_context(
    browser: Any, stack: Stack, key: str, scheme: str = "light", viewport: dict[str, int] | None = None
) -> Any:
    # The console's CSP forbids eval, which Playwright's wait_for_function needs to run its
    # predicate; the bench lifts it for its own probes (the browser tests keep it on).
    context = browser.new_context(
        base_url=stack.api_url,
        viewport=viewport or {"width": 1360, "height": 860},
        color_scheme=scheme,
        bypass_csp=True,
    )
    context.add_init_script(f"localStorage.setItem('dynavera.apiKey', {json.dumps(key)})")
    return context


def load_to_agents_ms(browser: Any, stack: Stack, key: str, runs: int = 7) -> dict[str, float]:
    cold, warm = [], []
    for _ in range(runs):
        context = new_context(browser, stack, key)
        context.add_init_script(AGENTS_SHOWN)
        page = context.new_page()
        for times in (cold, warm):
            page.goto("/console/agents")
            page.wait_for_function("window.__agentsAt")
            times.append(page.evaluate("window.__agentsAt"))
        context.close()
    return {
        "cold cache, median (ms)": round(statistics.median(cold)),
        "warm cache, median (ms)": round(statistics.median(warm)),
    }


def synthetic_stream(browser: Any, stack: Stack, key: str) -> dict[str, Any]:
    execution_id, agent_id = str(uuid.uuid4()), str(uuid.uuid4())
    stamp = "2026-01-01T00:00:00Z"
    execution = {
        "execution_id": execution_id,
        "agent_id": agent_id,
        "status": "running",
        "input_data": {"query": "Stream 2,000 tokens"},
        "output_data": None,
        "error_message": None,
        "created_at": stamp,
        "started_at": stamp,
        "completed_at": None,
    }
    agent = {
        "agent_id": agent_id,
        "name": "Synthetic",
        "description": "",
        "status": "active",
        "created_at": stamp,
        "updated_at": stamp,
        "config": {"system_prompt": "", "collection": "fnirs", "top_k": 4, "max_tokens": 2048, "temperature": 0},
    }
    context = new_context(browser, stack, key)
    context.add_init_script(FAKE_SOCKET.replace("__TOKENS__", str(TOKENS)))
    page = context.new_page()
    api = stack.api_url
    page.route(f"{api}/executions/{execution_id}", lambda route: route.fulfill(json=execution))
    page.route(
        f"{api}/executions/{execution_id}/events?*",
        lambda route: route.fulfill(json={"events": [], "next_after": None}),
    )
    page.route(f"{api}/agents/{agent_id}", lambda route: route.fulfill(json=agent))
    page.goto(f"/console/executions/{execution_id}")
    page.wait_for_function("window.__stream && window.__stream.end", timeout=120_000)
    page.get_by_test_id("status").filter(has_text="completed").wait_for()
    page.wait_for_timeout(300)
    start, end = page.evaluate("[window.__stream.start, window.__stream.end]")
    frames = [t for t in page.evaluate("window.__frames") if start <= t <= end]
    gaps = [b - a for a, b in pairwise(frames)]
    tasks = [d for s, d in page.evaluate("window.__longTasks") if start <= s <= end + 100]
    rows = page.get_by_test_id("log-row").count()
    logged = page.get_by_test_id("event-count").inner_text()
    context.close()
    return {
        "token frames": TOKENS,
        "stream duration (s)": round((end - start) / 1000, 2),
        "frames per second": round(len(frames) / ((end - start) / 1000), 1),
        "longest frame (ms)": round(max(gaps), 1) if gaps else None,
        "long tasks (count)": len(tasks),
        "long tasks (total ms)": round(sum(tasks)),
        "events held / log rows in the DOM": f"{logged} / {rows}",
    }


def screenshots(browser: Any, stack: Stack, key: str, agent_id: str, folder: Path) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    taken = []
    for scheme in ("light", "dark"):
        context = new_context(browser, stack, key, scheme)
        page = context.new_page()
        page.goto("/console/agents")
        page.get_by_test_id("agent-row").first.wait_for()
        page.screenshot(path=folder / f"console-agents-{scheme}.png")
        page.goto(f"/console/agents/{agent_id}")
        page.get_by_label("Question", exact=True).fill(SLOW_QUESTION)
        page.get_by_role("button", name="Run", exact=True).click()
        page.wait_for_url(re.compile(r"/executions/"))
        page.wait_for_function(
            "document.querySelector('[data-testid=answer]')?.textContent.length > 200", timeout=180_000
        )
        page.get_by_test_id("status").filter(has_text="running").wait_for()
        page.screenshot(path=folder / f"console-running-{scheme}.png")
        page.get_by_test_id("status").filter(has_text="completed").wait_for(timeout=180_000)
        page.wait_for_timeout(400)
        page.screenshot(path=folder / f"console-finished-{scheme}.png", full_page=True)
        finished = page.url
        page.goto("/console/runs")
        page.get_by_test_id("run-row").first.wait_for()
        page.screenshot(path=folder / f"console-runs-{scheme}.png")
        page.goto("/console/collections")
        page.get_by_test_id("collection-row").first.get_by_role("link").first.click()
        page.get_by_test_id("document-row").first.wait_for()
        page.screenshot(path=folder / f"console-collection-{scheme}.png")
        context.close()
        phone = new_context(browser, stack, key, scheme, PHONE)
        page = phone.new_page()
        page.goto(finished)
        page.get_by_test_id("status").filter(has_text="completed").wait_for()
        page.screenshot(path=folder / f"console-phone-{scheme}.png", full_page=True)
        phone.close()
        shots = ("agents", "running", "finished", "runs", "collection", "phone")
        taken += [f"console-{what}-{scheme}.png" for what in shots]
    return taken


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--screenshots", type=Path, help="also take the README's screenshots into this folder")
    parser.add_argument("--aws-url", default=endpoint.DEFAULT_URL, help="the AWS endpoint (not a shared one)")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    report: dict[str, Any] = {"bundle": bundle_sizes()}
    stack = Stack(
        stage=f"console{uuid.uuid4().hex[:6]}",
        aws_url=args.aws_url,
        gateway_port=free_port(),
        runtime_url=f"http://127.0.0.1:{free_port()}",
        log_dir=ROOT / "build" / "logs" / "console-bench",
    )
    store = tempfile.TemporaryDirectory(prefix="console-bench-chroma-")
    try:
        stack.start_aws()
        stack.start_chroma(Path(store.name), port=free_port())
        stack.start_indexer()
        stack.start_runtime()
        stack.start_gateway()
        stack.start_poller()
        key = create_key(stack, f"console-bench-{uuid.uuid4().hex[:6]}")
        upload_corpus(stack.api_url, key, wait_seconds=300)
        headers = {"Authorization": f"Bearer {key}"}
        ids = []
        for name, description, max_tokens in AGENTS:
            body = {
                "name": name,
                "description": description,
                "config": {"collection": "fnirs", "max_tokens": max_tokens, "temperature": 0.2},
            }
            ids.append(
                httpx.post(f"{stack.api_url}/agents", json=body, headers=headers).raise_for_status().json()["agent_id"]
            )
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            report["page load to agents list"] = load_to_agents_ms(browser, stack, key)
            report["synthetic 2,000-token stream"] = synthetic_stream(browser, stack, key)
            if args.screenshots:
                # A few short runs of the other agents, so the runs list shows more than one.
                for agent_id, question in zip(ids[1:], SHORT_QUESTIONS, strict=True):
                    body = {"input_data": {"query": question}, "config": {"max_tokens": 48}}
                    httpx.post(f"{stack.api_url}/agents/{agent_id}/executions", json=body, headers=headers)
                report["screenshots"] = screenshots(browser, stack, key, ids[0], args.screenshots)
            browser.close()
    finally:
        stack.stop()
        store.cleanup()
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
