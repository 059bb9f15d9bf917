import json

import pytest

from services.cli.scenario import formats
from services.ingest.fhir import FHIR_CONTENT_TYPE
from shared.errors import RejectedInput
from shared.schemas.records import LOINC, SNOMED
from tests.support.factories.ingest import by_code, fixture, pseudonymize, read, unshifted

FHIR = FHIR_CONTENT_TYPE


def test_a_bundle_with_vitals_and_labs_becomes_one_record_per_encounter() -> None:
    ingested = read(fixture("vitals-and-labs.fhir.json"), "cleveland", FHIR)
    [record] = ingested.records
    assert ingested.rejected == [] and record.source_format == "fhir"
    assert record.patient == pseudonymize("cleveland", "CCF-0048213")  # the MR identifier, not the SSN
    assert record.demographics.age_years == 68 and record.demographics.sex == "female"
    assert record.encounter == pseudonymize("cleveland", "V-2026-5521", "encounter")
    assert unshifted(record, record.recorded_at).isoformat() == "2026-10-30T08:15:00-04:00"
    observations = by_code(record)
    assert (observations["8480-6"].value, observations["8480-6"].unit, observations["8480-6"].interpretation) == (
        142.0,
        "mm[Hg]",
        "H",
    )
    assert observations["8462-4"].value == 88.0 and observations["8867-4"].unit == "/min"
    cholesterol = observations["2093-3"]  # LOINC chosen over the local CHOL coding
    assert (cholesterol.code.system, cholesterol.value, cholesterol.unit) == (LOINC, 233.0, "mg/dL")
    assert cholesterol.reference_range == "<=200" and observations["4548-4"].reference_range == "4-5.6"
    assert observations["8601-7"].value_code.code == "164865005" and observations["8601-7"].value_code.system == SNOMED
    assert observations["11524-6"].value_code.code == "164865005"  # the DiagnosticReport's coded conclusion
    [condition] = record.conditions
    assert (condition.code.code, condition.status) == ("38341003", "active")
    assert unshifted(record, condition.onset).year == 2019 and condition.onset != unshifted(record, condition.onset)


def test_the_scenario_bundle_carries_the_bp_panel_component_and_the_uci_values() -> None:
    document = {
        "patient_id": "CLEVELAND-00001",
        "encounter_id": "ENC-00001",
        "recorded_at": "2026-01-05T08:00:00+00:00",
        "age_years": 63,
        "sex": "male",
        "observations": [
            {
                "code": {"system": LOINC, "code": "8480-6"},
                "value": 145.0,
                "unit": "mm[Hg]",
                "time": "2026-01-05T08:00:00+00:00",
            },
            {
                "code": {"system": "urn:aimass:code", "code": "chest-pain-type"},
                "value_code": {
                    "system": "urn:aimass:code",
                    "code": "chest-pain-type:typical angina",
                    "display": "typical angina",
                },
                "time": "2026-01-05T08:00:00+00:00",
            },
        ],
        "conditions": [{"code": {"system": SNOMED, "code": "53741008"}, "status": "active"}],
    }
    bundle = formats.fhir_bundle(document)
    panel = next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Observation")
    assert panel["code"]["coding"][0]["code"] == "85354-9"
    assert panel["component"][0]["code"]["coding"][0]["code"] == "8480-6"
    [record] = read(json.dumps(bundle).encode(), "cleveland", FHIR)
    assert record.demographics.age_years == 63
    assert by_code(record)["8480-6"].value == 145.0
    assert by_code(record)["chest-pain-type"].value_code.code == "chest-pain-type:typical angina"
    assert record.conditions[0].code.code == "53741008"


def _bundle_with_bad_observation() -> dict:
    bundle = json.loads(fixture("vitals-and-labs.fhir.json"))
    bundle["entry"][4]["resource"]["valueQuantity"]["value"] = "two hundred"
    return bundle


def test_one_bad_entry_is_rejected_alone_with_its_position_and_its_context() -> None:
    ingested = read(json.dumps(_bundle_with_bad_observation()).encode(), "cleveland", FHIR)
    [record] = ingested.records
    assert "2093-3" not in by_code(record) and "8480-6" in by_code(record)
    [part] = ingested.rejected
    assert part.label == "entry-4" and part.content_type == FHIR
    assert part.reason.startswith("FHIR Bundle.entry[4] Observation.valueQuantity.value:")
    assert "two hundred" not in part.reason
    replay = json.loads(part.document)  # the entry with the Patient and Encounter it references: replayable
    assert [e["resource"]["resourceType"] for e in replay["entry"]] == ["Patient", "Encounter", "Observation"]
    fixed = replay
    fixed["entry"][2]["resource"]["valueQuantity"]["value"] = 233
    [again] = read(json.dumps(fixed).encode(), "cleveland", FHIR, message_id="m-1#entry-4")
    assert again.patient == record.patient and by_code(again)["2093-3"].value == 233.0


def test_an_observation_whose_subject_is_unknown_is_rejected_alone() -> None:
    bundle = json.loads(fixture("vitals-and-labs.fhir.json"))
    bundle["entry"][3]["resource"]["subject"] = {"reference": "Patient/nobody"}
    ingested = read(json.dumps(bundle).encode(), "cleveland", FHIR)
    assert [p.label for p in ingested.rejected] == ["entry-3"]
    assert "subject" in ingested.rejected[0].reason and "nobody" not in ingested.rejected[0].reason


def test_a_single_observation_identified_by_subject_identifier_is_a_record() -> None:
    observation = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": LOINC, "code": "8867-4"}]},
        "subject": {"identifier": {"value": "MRN-77"}},
        "effectiveDateTime": "2026-11-01",
        "valueQuantity": {"value": 61, "system": "http://unitsofmeasure.org", "code": "/min"},
    }
    [record] = read(json.dumps(observation).encode(), "cleveland", FHIR)
    assert record.patient == pseudonymize("cleveland", "MRN-77") and by_code(record)["8867-4"].value == 61.0


def test_a_partial_birth_date_gives_an_age() -> None:
    bundle = json.loads(fixture("vitals-and-labs.fhir.json"))
    bundle["entry"][0]["resource"]["birthDate"] = "1930"
    [record] = read(json.dumps(bundle).encode(), "cleveland", FHIR)
    assert record.demographics.age_years == 90  # 96, reported as 90


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b'{"resourceType": "Observation", "status": "final"}', "FHIR Observation.code"),
        (b'{"status": "final"}', "no resourceType"),
        (b'{"resourceType": "Bundle", "type": "collection", "entry": {}}', "Bundle.entry: expected a list"),
        (b'{"resourceType": "Bundle", "type": "collection", "entry": []}', "nothing to ingest"),
        (
            b'{"resourceType": "Bundle", "entry": [{"resource": {"resourceType": "Patient", "gender": 5}}]}',
            "Bundle.entry[0] Patient.gender",
        ),
    ],
)
def test_bad_fhir_is_rejected_with_a_reason(body: bytes, says: str) -> None:
    with pytest.raises(RejectedInput) as caught:
        read(body, "cleveland", FHIR)
    assert says in caught.value.reason
