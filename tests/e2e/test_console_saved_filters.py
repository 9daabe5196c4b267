"""The console's fleet page applies a saved filter from its select (a real browser)."""

from __future__ import annotations

from patchgate.services import devices as device_service
from patchgate.services.devices import DeviceRow, saved_filters
from tests.conftest import Env
from tests.e2e.test_console import Console, browser, console

__all__ = ["browser", "console"]


def test_the_fleet_page_applies_a_saved_filter_with_the_search_fields(
    env: Env, console: Console
) -> None:
    rows = [
        DeviceRow(f"gw-{i:03d}", ("qa",) if i % 2 else (), "demo-gw-1", "1.0.0") for i in range(20)
    ]
    device_service.import_devices(env.ctx, rows, actor="t")
    saved_filters.create(env.ctx, "odd-qa", "group==qa", actor="t")
    page = console.sign_in(env.admin_token)
    console.go("/console/devices")
    page.select_option("select[name=saved]", "odd-qa")
    page.fill("input[name=search]", "gw-01")
    page.click("form.filters button[type=submit]")
    ids = page.locator("tbody tr td:first-child").all_inner_texts()
    assert ids == ["gw-011", "gw-013", "gw-015", "gw-017", "gw-019"]
    assert page.locator("select[name=saved] option:checked").inner_text() == "odd-qa"
    console.go("/console/devices?saved=gone")
    assert "no saved filter 'gone'" in page.inner_text("main")
    assert console.errors == []
