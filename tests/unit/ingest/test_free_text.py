"""Safe Harbor free text: text values dropped unless a task allowlists the code, in every format; narrative fields
never read; the allowlist in the task files; the count in the metrics."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pydicom
import pytest
import yaml
from faststream.kafka import TestKafkaBroker
from faststream.kafka.annotations import KafkaMessage
from pydicom.data import get_testdata_file

from services.cli.scenario import formats
from services.ingest.app import create_service
from services.ingest.documents import ReadOptions, envelope_of, read_document
from services.ingest.free_text import is_free_text, strip_free_text
from services.ingest.table_mapping import ColumnMapping, TableMapping
from shared.broker import raw_body
from shared.schemas import Code, Observation
from shared.schemas.records import LOINC
from shared.settings import PROJECT_ROOT, Settings
from shared.tasks import TASKS_DIR, free_text_codes, load_task, load_tasks
from shared.topics import CE_ID, CE_SOURCE
from tests.support.factories.ingest import NOW, by_code, pseudonymize, read

MARK = "Wrenfield"  # a made-up surname: wherever free text could carry one, it must not come out
COMMENT = "8251-1"  # LOINC "Service comment"
UCI = {
    "patient_id": "MRN-77",
    "encounter_id": "ENC-77",
    "recorded_at": "2026-01-05T08:00:00+00:00",
    "age_years": 58,
    "sex": "male",
    "observations": [],
}


@pytest.mark.parametrize(
    ("text", "free"),
    [
        ("Seen with Mrs Wrenfield", True),
        ("Positive", True),
        ("3.5-5.0 mmol/L", True),  # a unit in words cannot be told from a name by its letters
        ("20260105", True),  # digits in a text field: a date, a phone or a record number
        ("555 0143", True),
        ("true", False),
        ("FALSE", False),
        (">200", False),
        ("<= 5.5", False),
        ("1:128", False),
        ("70-99", False),
    ],
)
def test_what_counts_as_free_text(text: str, free: bool) -> None:
    assert is_free_text(text) is free


def test_stripping_keeps_the_observation_drops_the_text_and_counts_it() -> None:
    observations = [
        Observation(code=Code(system=LOINC, code=COMMENT), value_text=f"ask {MARK}", reference_range="see note"),
        Observation(code=Code(system=LOINC, code="2093-3"), value=233, reference_range="<=200"),
        Observation(code=Code(system=LOINC, code="x"), value_text="true"),
    ]
    stripped = strip_free_text(observations, set())
    assert stripped.dropped == 2
    comment, cholesterol, flag = stripped.observations
    assert (comment.code.code, comment.value_text, comment.reference_range) == (COMMENT, None, None)
    assert cholesterol == observations[1] and flag == observations[2]
    assert strip_free_text(observations, {(LOINC, COMMENT)}).observations[0] == observations[0]


def fhir_bundle_with_text() -> bytes:
    bundle = formats.fhir_bundle(UCI)
    patient = bundle["entry"][0]["resource"]
    patient["text"] = {"status": "generated", "div": f'<div xmlns="http://www.w3.org/1999/xhtml">{MARK}</div>'}
    subject, encounter = bundle["entry"][0]["fullUrl"], bundle["entry"][1]["fullUrl"]
    bundle["entry"][1]["resource"]["text"] = {
        "status": "generated",
        "div": f'<div xmlns="http://www.w3.org/1999/xhtml">{MARK}</div>',
    }
    common = {"status": "final", "subject": {"reference": subject}, "encounter": {"reference": encounter}}
    bundle["entry"] += [
        {
            "fullUrl": "urn:uuid:0b8e6a6e-0000-4b8a-9f0e-000000000001",
            "resource": {
                "resourceType": "Observation",
                **common,
                "code": {"coding": [{"system": LOINC, "code": COMMENT}]},
                "valueString": f"Called Mr {MARK} back",
                "note": [{"text": f"{MARK} at home"}],
            },
        },
        {
            "fullUrl": "urn:uuid:0b8e6a6e-0000-4b8a-9f0e-000000000002",
            "resource": {
                "resourceType": "Observation",
                **common,
                "code": {"coding": [{"system": LOINC, "code": "2093-3"}]},
                "valueQuantity": {"value": 233, "unit": "mg/dL"},
                "referenceRange": [{"text": f"ask Dr {MARK}"}],
            },
        },
        {
            "fullUrl": "urn:uuid:0b8e6a6e-0000-4b8a-9f0e-000000000003",
            "resource": {
                "resourceType": "Observation",
                **common,
                "code": {"coding": [{"system": LOINC, "code": "11348-0"}]},
                "valueBoolean": True,
            },
        },
        {
            "fullUrl": "urn:uuid:0b8e6a6e-0000-4b8a-9f0e-000000000004",
            "resource": {
                "resourceType": "DiagnosticReport",
                **common,
                "code": {"coding": [{"system": LOINC, "code": "11524-6"}]},
                "conclusion": f"discussed with {MARK}",
            },
        },
    ]
    return json.dumps(bundle).encode()


def test_fhir_value_string_and_worded_reference_ranges_are_dropped_narrative_and_notes_never_read() -> None:
    ingested = read(fhir_bundle_with_text(), "cleveland", "application/fhir+json")
    [record] = ingested.records
    assert ingested.rejected == []
    assert MARK not in record.model_dump_json()
    observations = by_code(record)
    assert observations[COMMENT].value_text is None and observations["2093-3"].reference_range is None
    assert observations["2093-3"].value == 233.0 and observations["11348-0"].value_text == "true"  # boolean travels
    assert ingested.free_text_dropped == 2


def test_fhir_value_string_of_an_allowlisted_code_travels() -> None:
    ingested = read(fhir_bundle_with_text(), "cleveland", "application/fhir+json", free_text_codes={(LOINC, COMMENT)})
    assert by_code(ingested[0])[COMMENT].value_text == f"Called Mr {MARK} back"
    assert ingested.free_text_dropped == 1  # the worded reference range of 2093-3 still goes


def test_hl7_nte_segments_and_text_results_do_not_come_out() -> None:
    oru = formats.hl7_oru(
        {
            **UCI,
            "observations": [
                {
                    "code": {"system": LOINC, "code": "2093-3"},
                    "value": 233.0,
                    "unit": "mg/dL",
                    "time": UCI["recorded_at"],
                }
            ],
        }
    )
    oru += f"NTE|1||Patient {MARK} fasting\rOBX|2|TX|{COMMENT}^Comment^LN||{MARK} called||||||F\rNTE|2||{MARK}\r"
    ingested = read(oru.encode(), "hungary", "x-application/hl7-v2+er7")
    [record] = ingested.records
    assert MARK not in record.model_dump_json() and ingested.free_text_dropped == 1
    assert by_code(record)["2093-3"].value == 233.0 and by_code(record)[COMMENT].value_text is None


def csv_options(**more: object) -> ReadOptions:
    table = TableMapping(
        patient_id="mrn",
        recorded_at="visit",
        columns={
            "sbp": ColumnMapping(system=LOINC, code="8480-6", unit="mm[Hg]"),
            "comment": ColumnMapping(system=LOINC, code=COMMENT, kind="text"),
        },
    )
    return ReadOptions(tables={"clinic": table}, **more)  # type: ignore[arg-type]


def read_csv(body: str, options: ReadOptions):
    headers = {"ce_source": "clinic", "ce_id": "m-1", "content-type": "text/csv"}
    return read_document(body.encode(), headers, envelope_of(headers, "t/0/0", NOW), pseudonymize, 1_000_000, options)


CSV = f"mrn,visit,sbp,comment,notes\nMRN-1,2026-01-05T08:00:00+00:00,130,{MARK} rang,{MARK} unmapped column\n"


def test_csv_text_columns_are_dropped_and_unmapped_columns_never_read() -> None:
    ingested = read_csv(CSV, csv_options())
    [record] = ingested.records
    assert MARK not in record.model_dump_json() and ingested.free_text_dropped == 1
    assert by_code(record)["8480-6"].value == 130.0


def test_a_csv_text_column_an_allowlist_names_travels_and_unmapped_columns_still_do_not() -> None:
    [record] = read_csv(CSV, csv_options(free_text_codes=frozenset({(LOINC, COMMENT)})))
    assert by_code(record)[COMMENT].value_text == f"{MARK} rang" and "unmapped" not in record.model_dump_json()


def test_canonical_json_value_text_is_dropped_unless_allowlisted() -> None:
    body = json.dumps(
        {**UCI, "observations": [{"code": {"system": LOINC, "code": COMMENT}, "value_text": f"{MARK} rang"}]}
    ).encode()
    dropped = read(body, "switzerland", "application/json")
    assert dropped[0].observations[0].value_text is None and dropped.free_text_dropped == 1
    kept = read(body, "switzerland", "application/json", free_text_codes={(LOINC, COMMENT)})
    assert kept[0].observations[0].value_text == f"{MARK} rang" and kept.free_text_dropped == 0


def test_dicom_free_text_tags_reach_neither_the_record_nor_the_claim_check(tmp_path: Path) -> None:
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    for keyword in ("ImageComments", "StudyDescription", "SeriesDescription", "PatientComments", "ContrastBolusAgent"):
        setattr(ds, keyword, f"{MARK} {keyword}")
    buffer = io.BytesIO()
    ds.save_as(buffer)
    ingested = read(buffer.getvalue(), "cleveland", "application/dicom", data_root=tmp_path)
    assert MARK not in ingested[0].model_dump_json()
    [attachment] = ingested.attachments
    assert MARK.encode() not in attachment.content


def test_task_files_allowlist_free_text_codes_and_default_to_none(tmp_path: Path) -> None:
    shipped = load_tasks(TASKS_DIR)
    assert shipped and all(task.free_text_codes == [] for task in shipped.values())
    spec = yaml.safe_load((TASKS_DIR / "heart_disease.yaml").read_text())
    spec["free_text_codes"] = [{"system": LOINC, "code": COMMENT}, {"system": "urn:aimass:code", "code": "note"}]
    (tmp_path / "heart_disease.yaml").write_text(yaml.safe_dump(spec))
    task = load_task(tmp_path / "heart_disease.yaml")
    assert free_text_codes([task, *shipped.values()]) == {(LOINC, COMMENT), ("urn:aimass:code", "note")}
    spec["free_text_codes"] = [COMMENT]  # a bare code without its system is refused, not guessed
    (tmp_path / "heart_disease.yaml").write_text(yaml.safe_dump(spec))
    with pytest.raises(ValueError, match="free_text_codes"):
        load_task(tmp_path / "heart_disease.yaml")


async def test_ingest_reads_the_allowlist_from_the_task_files_and_counts_what_it_drops(tmp_path: Path) -> None:
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    spec = yaml.safe_load((TASKS_DIR / "heart_disease.yaml").read_text())
    (tasks / "heart_disease.yaml").write_text(
        yaml.safe_dump({**spec, "free_text_codes": [{"system": LOINC, "code": COMMENT}]})
    )
    settings = Settings(
        topic_prefix="unit.",
        var_dir=tmp_path,
        pseudonym_key="unit-test-key-0123456789",
        hospitals_dir=PROJECT_ROOT / "deploy" / "hospitals",
        tasks_dir=tasks,
    )
    service = create_service(settings)
    outputs: list[dict] = []

    @service.broker.subscriber("unit.records.ingested", decoder=raw_body)
    async def collect(message: KafkaMessage) -> None:
        outputs.append(json.loads(message.body))

    observations = [
        {"code": {"system": LOINC, "code": COMMENT}, "value_text": "fasting"},
        {"code": {"system": LOINC, "code": "8251-0"}, "value_text": f"{MARK} rang"},
    ]
    async with TestKafkaBroker(service.broker) as broker:
        body = json.dumps({**UCI, "observations": observations}).encode()
        await broker.publish(
            body, "unit.ingest.raw", headers={CE_SOURCE: "hungary", CE_ID: "m-1", "content-type": "application/json"}
        )
    [record] = outputs
    assert [o.get("value_text") for o in record["observations"]] == ["fasting", None]
    dropped = service.metrics.registry.get_sample_value(
        "aimass_ingest_free_text_dropped_total", {"hospital": "hungary", "format": "json"}
    )
    assert dropped == 1.0
