"""The console's key page (DESIGN §3): a signed-in user sees their keys by name and prefix,
makes one (its secret shown once), and revokes it; the API then refuses it."""

from __future__ import annotations

import re
import uuid
from typing import Any

from playwright.sync_api import expect

from local.stack import Stack
from tests.conftest import Api
from tests.live import wait_until

expect.set_options(timeout=15_000)


def test_make_a_key_see_its_secret_once_and_revoke_it(signed_in: Any, console_api: Api, live_stack: Stack) -> None:
    page = signed_in
    page.get_by_role("link", name="API keys").click()
    expect(page.get_by_role("heading", name="API keys")).to_be_visible()
    name = f"laptop-{uuid.uuid4().hex[:6]}"
    page.get_by_label("Name").fill(name)
    page.get_by_role("button", name="Create key").click()
    secret = page.get_by_test_id("new-key").inner_text().strip()
    assert re.fullmatch(r"dv_[\w-]{40,}", secret)
    assert Api(live_stack, secret).get("/agents").status_code == 200
    row = page.get_by_role("row").filter(has_text=name)
    expect(row).to_contain_text(secret[:9])
    expect(row).not_to_contain_text(secret)  # the list shows the prefix, never the secret
    page.reload()
    expect(page.get_by_role("row").filter(has_text=name)).to_be_visible()
    expect(page.get_by_test_id("new-key")).to_have_count(0)  # shown once
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name=f"Revoke {name}").click()
    expect(page.get_by_role("row").filter(has_text=name)).to_have_count(0)
    wait_until(lambda: Api(live_stack, secret).get("/agents").status_code == 401, 5, "the revoked key refused")
    assert name not in console_api.get("/keys").text
