"""The clinician pages in a real browser (Debian's chromium), on the demo run's platform: a patient's timeline,
the questioning page asking what the record lacks, two answers written back through the whole pipeline, and the
fused risk changing after each. Screenshots of each page land in docs/images."""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx
import pytest
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from services.cli.simulate import Run
from services.cli.token import token_for
from shared.auth import SCOPE_REPORTS, SCOPE_SUBMIT
from shared.settings import Settings
from tests.support.browser import TABLET, chromium, screenshot
from tests.support.processes import ServiceProcess, log_tails

TASK = "heart_disease"
PIPELINE_SECONDS = 90  # an answer goes through ingest, clean, infer (five models), fuse and report


def _questioned_patient(run: Run, settings: Settings) -> tuple[str, str, dict]:
    """A held-out patient whose latest result the questioning page has a question about."""
    base = settings.public_url("report")
    tokens: dict[str, str] = {}
    for report in run.outcome.own_reports():
        hospital = run.outcome.hospital_of(report)
        token = tokens.setdefault(hospital, token_for(settings, hospital, f"{SCOPE_REPORTS} {SCOPE_SUBMIT}"))
        page = httpx.get(
            f"{base}/patients/{report.patient}/questions/{TASK}?format=json",
            headers={"authorization": f"Bearer {token}"},
            timeout=10,
        )
        assert page.status_code == 200, page.text
        data = page.json()
        if data["question"] is not None and len(data["missing"]) >= 2:
            return report.patient, hospital, data
    pytest.fail("no held-out patient with two missing inputs that could change the decision")


def _link(settings: Settings, patient: str, hospital: str) -> str:
    token = token_for(settings, hospital, f"{SCOPE_REPORTS} {SCOPE_SUBMIT}")
    made = httpx.post(
        f"{settings.public_url('report')}/patients/{patient}/link?answer=true",
        headers={"authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert made.status_code == 201, made.text
    return str(made.json()["url"])


def _risk(browser: WebDriver) -> tuple[float, str]:
    risk = browser.find_element(By.ID, "risk")
    return float(risk.get_attribute("data-probability") or "nan"), risk.get_attribute("data-report-id") or ""


def _answer(browser: WebDriver, platform: dict[str, ServiceProcess]) -> tuple[str, str]:
    """Answers the page's question with the value most telling for the model (the last option, the top of a
    numeric input's plausible range); the new result's risk and report id once the pipeline made it."""
    form = browser.find_element(By.ID, "question")
    asked = form.get_attribute("data-input") or ""
    numbers = form.find_elements(By.ID, "answer-value")
    if numbers:
        numbers[0].send_keys(numbers[0].get_attribute("max") or "")  # the top of the plausible range
    else:
        form.find_elements(By.CSS_SELECTOR, "input[type=radio]")[-1].click()
    before = _risk(browser)[1]
    browser.find_element(By.ID, "send").click()
    try:
        WebDriverWait(browser, PIPELINE_SECONDS, poll_frequency=0.5).until(
            lambda b: not b.find_elements(By.ID, "waiting") and _risk(b)[1] != before
        )
    except TimeoutException:
        pytest.fail(f"no new result for the answer to {asked} at {browser.current_url}\n{log_tails(platform.values())}")
    return asked, _risk(browser)[1]


def test_a_clinician_walks_the_timeline_answers_two_questions_and_sees_the_risk_change(
    run: Run, settings: Settings, platform: dict[str, ServiceProcess]
) -> None:
    patient, hospital, first = _questioned_patient(run, settings)
    link = urlsplit(_link(settings, patient, hospital))
    base = f"{link.scheme}://{link.netloc}"
    with chromium() as browser:
        browser.get(f"{base}{link.path}?{link.query}")  # the timeline, opened from the link without a token
        assert patient in browser.page_source
        trend = browser.find_elements(By.ID, f"risk-trend-{TASK}")
        if trend:  # the timeline page shows the risk trend and links to the questioning page
            browser.find_element(By.ID, f"ask-{TASK}").click()
        else:
            browser.get(f"{base}{link.path}/questions/{TASK}?{link.query}")
        WebDriverWait(browser, 10).until(lambda b: b.find_elements(By.ID, "risk"))
        start, start_report = _risk(browser)
        assert start == pytest.approx(first["probability"], abs=1e-3)
        assert browser.find_element(By.ID, "question").get_attribute("data-input") == first["question"]["input"]
        screenshot(browser, "questioning")
        recorded = set(first["recorded"])
        asked_first, after_first = _answer(browser, platform)
        middle = _risk(browser)[0]
        assert after_first != start_report and middle != start, "the first answer changed the fused risk"
        if browser.find_elements(By.ID, "question"):
            asked_second, _ = _answer(browser, platform)
            assert asked_second != asked_first, "an answered input is not asked again"
        end = _risk(browser)[0]
        assert end != start
        labels = {m["input"]: m["label"] for m in first["missing"]}
        assert labels[asked_first] not in recorded, "never asks for an input the record has"
        _, latest = _risk(browser)
        asked = "What drove this result?"
        browser.get(f"{base}{link.path}/reports/{latest}/questions?{link.query}&q={asked.replace(' ', '+')}")
        answer = browser.find_element(By.ID, "answer")
        assert answer.get_attribute("data-grounded") == "true" and answer.get_attribute("data-intent") == "drivers"
        screenshot(browser, "questions")
        browser.back()
        browser.find_element(By.ID, "lang-zh").click()
        WebDriverWait(browser, 10).until(lambda b: b.find_element(By.TAG_NAME, "html").get_attribute("lang") == "zh-CN")
        assert "当前融合风险" in browser.page_source
        screenshot(browser, "questioning-zh")
    with chromium(TABLET) as tablet:
        tablet.get(f"{base}{link.path}/questions/{TASK}?{link.query}")
        width = tablet.execute_script("return document.documentElement.scrollWidth")
        assert width <= TABLET[0], "the page fits a tablet held upright"
        screenshot(tablet, "questioning-tablet")


def test_a_clinician_searches_the_hospital_s_patients_and_opens_a_report(run: Run, settings: Settings) -> None:
    """The search needs the hospital's token (no link is made for a list): the browser sends it on every request."""
    report = run.outcome.own_reports()[0]
    hospital = run.outcome.hospital_of(report)
    token = token_for(settings, hospital, SCOPE_REPORTS)
    base = settings.public_url("report")
    with chromium() as browser:
        browser.execute_cdp_cmd("Network.enable", {})
        browser.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": {"authorization": f"Bearer {token}"}})
        browser.get(f"{base}/patients?hospital={hospital}&task={TASK}")
        rows = browser.find_elements(By.CSS_SELECTOR, "#patients tr.patient")
        patients = {row.get_attribute("data-patient") for row in rows}
        assert report.patient in patients, "the hospital's held-out patient is found"
        assert all(row.find_element(By.CSS_SELECTOR, "td:nth-child(2)").text == hospital for row in rows)
        screenshot(browser, "patients")
        browser.find_element(By.CSS_SELECTOR, f"tr[data-patient='{report.patient}'] a").click()
        WebDriverWait(browser, 10).until(lambda b: b.find_elements(By.ID, f"risk-trend-{TASK}"))
        browser.find_element(By.CSS_SELECTOR, f".result[data-report-id='{report.report_id}'] a").click()
        WebDriverWait(browser, 10).until(lambda b: b.find_elements(By.ID, "drivers"))
        assert report.report_id in browser.page_source and browser.find_elements(By.ID, "ask-link")
        screenshot(browser, "report-page")
