"""Who may read which page: a link opens its page and those below it, for its hospital only."""

from services.report.access import refusal
from shared.auth import SCOPE_REPORTS, Principal

LINK = Principal("cleveland-backend", "cleveland", frozenset({SCOPE_REPORTS}), via="link", resource="/patients/p-1")
TOKEN = Principal("cleveland-backend", "cleveland", frozenset({SCOPE_REPORTS}))


def test_a_patient_link_opens_the_patients_pages_and_no_other() -> None:
    assert refusal(LINK, "cleveland", "/patients/p-1") is None
    assert refusal(LINK, "cleveland", "/patients/p-1/questions/heart_disease") is None
    assert refusal(LINK, "cleveland", "/patients/p-10") is not None  # a prefix of the id is not a page below
    assert refusal(LINK, "cleveland", "/patients") is not None
    assert refusal(LINK, "hungary", "/patients/p-1") is not None


def test_a_token_reads_its_own_hospitals_pages_only() -> None:
    assert refusal(TOKEN, "cleveland", "/patients/p-1") is None
    assert "another hospital" in (refusal(TOKEN, "hungary", "/patients/p-1") or "")
    nobody = Principal("ops", None, frozenset({SCOPE_REPORTS}))
    assert "no hospital" in (refusal(nobody, "cleveland", "/patients/p-1") or "")
