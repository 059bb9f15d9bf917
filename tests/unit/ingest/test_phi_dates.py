"""The PHI scan's dates (tests/support/phi.py ``date_identifiers``): sound against every shift ingest can make, and
still finding the real dates of the demo scenario."""

from __future__ import annotations

import secrets
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from pydicom.data import get_testdata_file

from services.cli.scenario import plan
from services.cli.scenario.heart import records_by_hospital
from services.ingest.dates import MAX_SHIFT_DAYS, shift_days
from services.ingest.pseudonym import Pseudonymizer
from tests.support.phi import PhiMatcher, date_identifiers, day_forms, dicom_dates, minute_forms

START = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
PLATFORM = (START, START + timedelta(minutes=10))


@pytest.fixture(scope="module")
def scenario() -> plan.Scenario:
    return plan.build(records_by_hospital(60, start=START, spread=True), {})


def shifted_outputs(scenario: plan.Scenario, key: bytes) -> str:
    """Every form of every time ingest could write for these patients under ``key``: what a run legitimately shows."""
    pseudonymize = Pseudonymizer(key)
    out = []
    for name, dates in scenario.dates.items():
        hospital, patient = name.split("/", 1)
        days = shift_days(key, pseudonymize(hospital, patient))
        for t in dates.care:
            moved = t + timedelta(days=days)
            out += [moved.isoformat(), *minute_forms(moved), *day_forms(moved.date())]
    return "\n".join(out)


def test_no_shift_under_any_key_produces_a_scanned_form(scenario: plan.Scenario) -> None:
    matcher = PhiMatcher(
        date_identifiers([(d.birth, d.care) for d in scenario.dates.values()], MAX_SHIFT_DAYS, PLATFORM)
    )
    for _ in range(50):
        assert matcher.found(shifted_outputs(scenario, secrets.token_bytes(32))) == set()


def test_every_real_time_of_the_scenario_and_every_birth_date_is_scanned(scenario: plan.Scenario) -> None:
    scanned = date_identifiers([(d.birth, d.care) for d in scenario.dates.values()], MAX_SHIFT_DAYS, PLATFORM)
    for dates in scenario.dates.values():
        for t in dates.care:
            assert minute_forms(t) <= scanned and t.strftime("%Y-%m-%dT%H:%M") in scanned
        if dates.birth is not None:
            assert day_forms(dates.birth) <= scanned
    # the scenario's dates of care are weeks apart at most: as dates alone, another patient's shift could hit them
    assert not any(day_forms(t.date()) & scanned for d in scenario.dates.values() for t in d.care)
    leaked = next(iter(scenario.dates.values())).care[0].isoformat()  # "2026-...T...:00+00:00" as a record writes it
    assert PhiMatcher(scanned).found(leaked)


def test_a_date_alone_is_scanned_when_no_other_date_and_no_platform_day_is_within_reach() -> None:
    lone, near, far = (
        datetime(1997, 4, 30, 11, 27, tzinfo=UTC),
        datetime(2004, 1, 19, 7, 27, tzinfo=UTC),
        datetime(2004, 8, 26, 18, 50, tzinfo=UTC),
    )
    scanned = date_identifiers([(None, [lone, near]), (None, [far])], MAX_SHIFT_DAYS, PLATFORM)
    assert day_forms(lone.date()) <= scanned and "04/30/1997" in scanned
    assert not day_forms(near.date()) & scanned and not day_forms(far.date()) & scanned  # 220 days apart
    today = date(2026, 3, 1)
    assert not day_forms(today) & date_identifiers([(today, [])], MAX_SHIFT_DAYS, PLATFORM)  # the platform's own day


def test_a_time_sharing_its_minute_of_the_day_with_another_within_reach_is_not_scanned_to_the_minute() -> None:
    a, b = datetime(2026, 1, 5, 8, 0, tzinfo=UTC), datetime(2026, 2, 5, 8, 0, tzinfo=UTC)
    c = datetime(2026, 1, 5, 8, 1, tzinfo=UTC)
    scanned = date_identifiers([(None, [a]), (None, [b]), (None, [c])], MAX_SHIFT_DAYS, PLATFORM)
    assert not minute_forms(a) & scanned and not minute_forms(b) & scanned and minute_forms(c) <= scanned
    during = START + timedelta(minutes=3)  # the platform's own clock said so
    assert not minute_forms(during) & date_identifiers([(None, [during])], MAX_SHIFT_DAYS, PLATFORM)


def test_dicom_dates_are_read_from_the_instance() -> None:
    birth, times = dicom_dates(Path(get_testdata_file("CT_small.dcm")).read_bytes())
    assert birth is None and datetime(2004, 1, 19, 7, 27, 30, tzinfo=UTC) in times
    assert datetime(1997, 4, 30, 11, 29, 36, tzinfo=UTC) in times
