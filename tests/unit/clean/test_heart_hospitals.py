"""All 920 real UCI rows, each sent the way its hospital sends (local codes, mmol/L, its own unit spellings),
come out of clean with the same features as the row read directly: the four hospitals become comparable."""

from __future__ import annotations

import json
import statistics
from collections import defaultdict

import pytest

from services.cli.scenario.formats import csv_rows, fhir_bundle, hl7_oru
from services.cli.scenario.heart import HOSPITALS, canonical_record, load_heart_disease, records_by_hospital
from services.ingest.documents import ReadOptions, envelope_of, read_document
from services.ingest.hospitals import load_tables
from shared.settings import PROJECT_ROOT
from shared.tasks import feature_value, load_tasks
from tests.support.factories.clean import PSEUDONYMIZE, SENDS, WHEN, cleaner, record_of

TASK = load_tasks()["heart_disease"]


@pytest.fixture(scope="module")
def cleaned_by_hospital():
    clean = cleaner()
    out: dict[str, list[tuple[list[float | None], object]]] = defaultdict(list)
    for position, row in enumerate(load_heart_disease().to_dict("records")):
        hospital = HOSPITALS[row["dataset"]]
        document = canonical_record(row, WHEN)
        reference = [feature_value(record_of(document, "reference", f"r-{position}"), f) for f in TASK.features]
        sent = SENDS[hospital](document)
        out[hospital].append((reference, clean.clean(record_of(sent, hospital, f"m-{position}"))))
    return out


def test_every_row_comes_out_with_the_task_features(cleaned_by_hospital) -> None:
    counts = {h: len(rows) for h, rows in cleaned_by_hospital.items()}
    assert counts == {"cleveland": 304, "hungary": 293, "va-long-beach": 200, "switzerland": 123}
    for rows in cleaned_by_hospital.values():
        for _, cleaned in rows:
            features = cleaned.record.features["heart_disease"]
            assert features.names == TASK.feature_names and features.label in (0.0, 1.0)


def test_features_equal_those_of_the_row_read_directly_whatever_the_hospital_sent(cleaned_by_hospital) -> None:
    for hospital, rows in cleaned_by_hospital.items():
        for reference, cleaned in rows:
            values = cleaned.record.features["heart_disease"].values
            for name, expected, got in zip(TASK.feature_names, reference, values, strict=True):
                assert (expected is None) == (got is None), (hospital, name)
                if expected is not None:
                    assert got == pytest.approx(expected, rel=1e-4), (hospital, name)


def test_no_local_code_is_left_unmapped(cleaned_by_hospital) -> None:
    for rows in cleaned_by_hospital.values():
        for _, cleaned in rows:
            assert not [
                f
                for f in cleaned.record.quality_flags
                if f.kind in ("unmapped_code", "unknown_unit", "incompatible_unit")
            ]


def test_cholesterol_sent_in_mmol_per_l_lands_in_the_same_range_as_mg_per_dl(cleaned_by_hospital) -> None:
    index = TASK.feature_names.index("cholesterol")
    medians = {}
    for hospital in ("cleveland", "hungary", "va-long-beach"):
        values = [c.record.features["heart_disease"].values[index] for _, c in cleaned_by_hospital[hospital]]
        medians[hospital] = statistics.median(v for v in values if v is not None)
    assert all(180 <= median <= 280 for median in medians.values()), medians
    converted = [c for _, c in cleaned_by_hospital["va-long-beach"] if c.conversions]
    assert converted and all(c.conversions == [("mmol/L", "mg/dL")] for c in converted)


def test_switzerland_cholesterol_is_flagged_and_missing_for_every_patient(cleaned_by_hospital) -> None:
    index = TASK.feature_names.index("cholesterol")
    for _, cleaned in cleaned_by_hospital["switzerland"]:
        assert cleaned.record.features["heart_disease"].values[index] is None
        assert any(f.kind == "implausible" and f.field == "2093-3" for f in cleaned.record.quality_flags)
        assert any(f.kind == "missing" and f.field == "cholesterol" for f in cleaned.record.quality_flags)


def test_the_real_formats_through_ingest_s_parsers_come_out_comparable() -> None:
    """Cleveland's FHIR Bundles, Hungary's HL7 v2 ORU^R01, VA Long Beach's CSV export (cholesterol in mmol/L, 2
    decimals) and Switzerland's JSON, read by ingest's own parsers: the same features as the rows read directly."""
    options = ReadOptions(tables=load_tables(PROJECT_ROOT / "deploy" / "hospitals"))

    def read(body: bytes, hospital: str, content_type: str, message_id: str) -> list:
        headers = {"ce_source": hospital, "content-type": content_type}
        return list(read_document(body, headers, envelope_of(headers, message_id, WHEN), PSEUDONYMIZE, 10**7, options))

    documents = records_by_hospital()
    sent = {
        "cleveland": [
            r
            for i, d in enumerate(documents["cleveland"])
            for r in read(json.dumps(fhir_bundle(d)).encode(), "cleveland", "application/fhir+json", f"c{i}")
        ],
        "hungary": [
            r
            for i, d in enumerate(documents["hungary"])
            for r in read(hl7_oru(d).encode(), "hungary", "x-application/hl7-v2+er7", f"h{i}")
        ],
        "va-long-beach": read(csv_rows(documents["va-long-beach"]).encode(), "va-long-beach", "text/csv", "va"),
        "switzerland": [
            r
            for i, d in enumerate(documents["switzerland"])
            for r in read(json.dumps(d).encode(), "switzerland", "application/json", f"s{i}")
        ],
    }
    clean = cleaner()
    cholesterol = TASK.feature_names.index("cholesterol")
    for hospital, records in sent.items():
        assert len(records) == len(documents[hospital])
        for document, record in zip(documents[hospital], records, strict=True):
            reference = [feature_value(record_of(document, "reference"), f) for f in TASK.features]
            cleaned = clean.clean(record)
            assert not [
                f
                for f in cleaned.record.quality_flags
                if f.kind in ("unmapped_code", "unknown_unit", "incompatible_unit")
            ]
            values = cleaned.record.features["heart_disease"].values
            for index, (expected, got) in enumerate(zip(reference, values, strict=True)):
                assert (expected is None) == (got is None), (hospital, TASK.feature_names[index])
                if expected is not None:  # VA's mmol/L has 2 decimals: 0.005 mmol/L is 0.2 mg/dL
                    tolerance = 0.3 if index == cholesterol else 1e-6
                    assert got == pytest.approx(expected, abs=tolerance), (hospital, TASK.feature_names[index])
