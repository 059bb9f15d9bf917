"""Safe Harbor dates: the per-patient offset (pure) and what ingest does with it in every format."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from services.cli.scenario import formats
from services.ingest.dates import (
    MAX_SHIFT_DAYS,
    shift_days,
    shift_dicom_date,
    shift_dicom_datetime,
    shift_record,
    shifted,
)
from services.ingest.pseudonym import Pseudonymizer, age_in_years
from shared.errors import RejectedInput
from shared.schemas import CanonicalRecord, Code, Condition, Observation
from shared.schemas.records import LOINC
from tests.support.factories.ingest import KEY, pseudonymize, read, unshifted

JSON = "application/json"
PSEUDONYMS = [pseudonymize("cleveland", f"MRN-{n:05d}") for n in range(3000)]


def test_the_offset_is_a_whole_number_of_days_within_the_range_and_never_zero() -> None:
    offsets = [shift_days(KEY, p) for p in PSEUDONYMS]
    assert all(1 <= abs(days) <= MAX_SHIFT_DAYS for days in offsets)
    # spread over the whole range, both directions: 3,000 patients land on most of the 730 offsets
    assert min(offsets) < -MAX_SHIFT_DAYS + 30 and max(offsets) > MAX_SHIFT_DAYS - 30
    assert len(set(offsets)) > 600


def test_the_offset_is_stable_per_patient_and_differs_between_patients() -> None:
    assert [shift_days(KEY, p) for p in PSEUDONYMS[:50]] == [shift_days(KEY, p) for p in PSEUDONYMS[:50]]
    assert len({shift_days(KEY, p) for p in PSEUDONYMS[:50]}) > 40


def test_the_offset_is_keyed_another_key_moves_the_same_patient_differently() -> None:
    other = b"another-key-0123456789abcdef!!"
    differs = sum(shift_days(KEY, p) != shift_days(other, p) for p in PSEUDONYMS[:200])
    assert differs > 190  # equal by chance about once in 730
    assert Pseudonymizer(KEY).date_shift_days(PSEUDONYMS[0]) == shift_days(KEY, PSEUDONYMS[0])  # what ingest uses


def test_a_shift_keeps_intervals_time_of_day_and_time_zone() -> None:
    eastern = timezone(timedelta(hours=-4))
    first, second = datetime(2026, 10, 30, 8, 15, tzinfo=eastern), datetime(2026, 11, 2, 17, 5, tzinfo=eastern)
    for days in (-365, -1, 1, 200):
        a, b = shifted(first, days), shifted(second, days)
        assert b - a == second - first and a != first
        assert a.tzinfo is eastern and (a.hour, a.minute) == (8, 15) and a.utcoffset() == timedelta(hours=-4)
    assert shifted(date(2024, 2, 29), 365) == date(2025, 2, 28)  # a calendar shift, not a year arithmetic


def test_every_time_of_care_in_a_record_moves_by_the_same_offset_and_received_at_stays() -> None:
    when = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
    record = CanonicalRecord(
        record_id="r",
        patient="p",
        hospital="h",
        recorded_at=when,
        received_at=when + timedelta(days=3),
        source_format="json",
        observations=[Observation(code=Code(system=LOINC, code="x"), value=1, time=when - timedelta(hours=2))],
        conditions=[Condition(code=Code(system=LOINC, code="y"), onset=when - timedelta(days=400))],
    )
    moved = shift_record(record, -30)
    assert moved.recorded_at == when - timedelta(days=30)
    assert moved.observations[0].time == when - timedelta(days=30, hours=2)
    assert moved.conditions[0].onset == when - timedelta(days=430)
    assert moved.received_at == record.received_at  # ingest's own clock, system metadata


@pytest.mark.parametrize(
    ("value", "days", "expected"),
    [
        ("20040119", 44, "20040303"),
        ("20040119", -19, "20031231"),
        ("20240228", 1, "20240229"),
        ("2004011", 3, ""),  # partial: cannot be shifted, so not kept as the real one either
        ("garbage!", 3, ""),
        ("00010101", -1, ""),  # would leave the calendar
    ],
)
def test_dicom_dates_are_shifted_or_emptied(value: str, days: int, expected: str) -> None:
    assert shift_dicom_date(value, days) == expected


def test_dicom_datetimes_keep_their_time_and_offset() -> None:
    assert shift_dicom_datetime("20040119072730.000000+0100", 2) == "20040121072730.000000+0100"
    assert shift_dicom_datetime("2004", 2) == ""


def document(patient: str, when: datetime, **more: object) -> bytes:
    observation = {"code": {"system": LOINC, "code": "8480-6"}, "value": 120, "unit": "mm[Hg]"}
    return json.dumps(
        {
            "patient_id": patient,
            "recorded_at": when.isoformat(),
            "observations": [{**observation, "time": (when - timedelta(minutes=5)).isoformat()}],
            **more,
        }
    ).encode()


def test_a_patients_documents_keep_their_intervals_and_another_patient_moves_differently() -> None:
    visits = [datetime(2026, 1, 5, 8, 0, tzinfo=UTC), datetime(2026, 3, 17, 14, 30, tzinfo=UTC)]
    first, second = (read(document("MRN-1", v), "hungary", JSON, message_id=f"m-{i}")[0] for i, v in enumerate(visits))
    assert first.patient == second.patient
    assert second.recorded_at - first.recorded_at == visits[1] - visits[0]
    assert first.recorded_at != visits[0] and unshifted(first, first.recorded_at) == visits[0]
    assert first.observations[0].time == first.recorded_at - timedelta(minutes=5)
    others = [read(document(f"MRN-{n}", visits[0]), "hungary", JSON)[0].recorded_at for n in range(2, 12)]
    assert len(set(others)) > 5, "other patients' same visit time moves by offsets of their own"


def test_the_same_patient_moves_by_the_same_offset_in_every_format() -> None:
    uci = {
        "patient_id": "VA-LONG-BEACH-00007",
        "encounter_id": "ENC-00007",
        "recorded_at": "2026-01-05T08:00:00+00:00",
        "age_years": 58,
        "sex": "male",
        "observations": [
            {
                "code": {"system": LOINC, "code": "8480-6"},
                "value": 130.0,
                "unit": "mm[Hg]",
                "time": "2026-01-05T08:00:00+00:00",
            }
        ],
    }
    hospital = "va-long-beach"
    sent = [
        (json.dumps(formats.fhir_bundle(uci, hospital)).encode(), "application/fhir+json"),
        (formats.hl7_oru(uci, hospital).encode(), "x-application/hl7-v2+er7"),
        (formats.csv_rows([uci]).encode(), "text/csv"),
        (json.dumps(uci).encode(), JSON),
    ]
    records = [read(body, hospital, kind)[0] for body, kind in sent]
    assert len({r.patient for r in records}) == 1
    assert {r.recorded_at for r in records} == {
        datetime(2026, 1, 5, 8, 0, tzinfo=UTC) + timedelta(days=pseudonymize.date_shift_days(records[0].patient))
    }


def test_the_age_comes_from_the_real_dates_even_when_the_shift_crosses_the_birthday() -> None:
    """Born 14 March 1961, seen 10 March 2026: 64, a few days before turning 65, whatever the offset."""
    birth, visit = date(1961, 3, 14), datetime(2026, 3, 10, 9, 0, tzinfo=UTC)
    crossing = 0
    for n in range(40):
        [record] = read(document(f"MRN-{n}", visit, birth_date=birth.isoformat()), "hungary", JSON)
        assert record.demographics.age_years == age_in_years(birth, visit.date()) == 64
        crossing += age_in_years(birth, record.recorded_at.date()) != 64
    assert crossing > 10, "some offsets would have changed the age had it been taken from the shifted date"


def test_the_birth_date_never_leaves_ingest_in_any_format() -> None:
    uci = {
        "patient_id": "CLEVELAND-00042",
        "recorded_at": "2026-01-05T08:00:00+00:00",
        "age_years": 61,
        "sex": "female",
        "observations": [],
    }
    born = formats.identity(uci).birth_date
    forms = [born.isoformat(), born.strftime("%Y%m%d"), born.strftime("%m/%d/%Y")]
    for body, kind, hospital in [
        (json.dumps(formats.fhir_bundle(uci)).encode(), "application/fhir+json", "cleveland"),
        (formats.hl7_oru(uci).encode(), "x-application/hl7-v2+er7", "hungary"),
        (formats.csv_rows([uci]).encode(), "text/csv", "va-long-beach"),
        (json.dumps({**uci, "age_years": None, "birth_date": born.isoformat()}).encode(), JSON, "switzerland"),
    ]:
        assert born.isoformat() in body.decode() or born.strftime("%Y%m%d") in body.decode()
        [record] = read(body, hospital, kind)
        out = record.model_dump_json()
        assert not [form for form in forms if form in out], kind
        assert record.demographics.age_years == 61


def test_a_date_too_close_to_the_calendars_end_to_shift_rejects_the_document_with_a_reason() -> None:
    with pytest.raises(RejectedInput, match="cannot be shifted"):
        # which way this patient moves decides whether year 1 or year 9999 is the end it would leave
        for when in (datetime(1, 1, 2, tzinfo=UTC), datetime(9999, 12, 30, tzinfo=UTC)):
            read(document("MRN-1", when), "hungary", JSON)
