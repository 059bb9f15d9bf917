"""The timeline page in a real browser (Debian's chromium): the page report serves for a patient with three
results, as a laptop and a tablet show it. The screenshots land in docs/images (docs/report.md shows them)."""

from __future__ import annotations

from pathlib import Path

import pytest
from selenium.webdriver.common.by import By

from shared.settings import Settings
from tests.support.browser import TABLET, chromium, screenshot
from tests.unit.report.test_timeline_routes import Edge, as_


@pytest.fixture
async def edge(fresh_settings: Settings):
    made = Edge(fresh_settings)
    yield made
    await made.client.aclose()


async def test_the_timeline_shows_the_risk_trend_and_every_result_on_a_laptop_and_a_tablet(
    edge: Edge, tmp_path: Path
) -> None:
    patient, ids = edge.history.patient, edge.history.report_ids
    page = await edge.client.get(f"/patients/{patient}", headers={**as_("cleveland"), "accept": "text/html"})
    assert page.status_code == 200
    saved = tmp_path / "timeline.html"
    saved.write_bytes(page.content)  # self-contained: inline CSS and SVG, nothing fetched
    with chromium() as browser:
        browser.get(saved.as_uri())
        trend = browser.find_element(By.ID, "risk-trend-heart_disease")
        assert trend.is_displayed() and trend.size["width"] > 300
        rows = browser.find_elements(By.CSS_SELECTOR, ".result[data-report-id]")
        assert sorted(r.get_attribute("data-report-id") for r in rows) == sorted(ids)
        latest = browser.find_element(By.ID, "latest-risk-heart_disease").text
        assert latest.endswith("%") and patient in browser.page_source
        screenshot(browser, "timeline")
    with chromium(TABLET) as tablet:
        tablet.get(saved.as_uri())
        assert tablet.execute_script("return document.documentElement.scrollWidth") <= TABLET[0]
        assert tablet.find_element(By.ID, "risk-trend-heart_disease").is_displayed()
        screenshot(tablet, "timeline-tablet")
