import json
from datetime import UTC, date, datetime

import pytest

from services.ingest.documents import envelope_of, read_document
from services.ingest.pseudonym import Pseudonymizer, age_in_years
from services.ingest.records import Envelope
from shared.errors import RejectedInput
from shared.pseudonyms import patient_reference

KEY = b"k" * 32
NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
JSON_HEADERS = {"content-type": "application/json", "ce_source": "cleveland"}


def document(**overrides: object) -> bytes:
    record = {
        "patient_id": "MRN-0042",
        "birth_date": "1961-03-14",
        "sex": "female",
        "recorded_at": "2026-11-01T09:30:00Z",
        "observations": [{"code": {"system": "http://loinc.org", "code": "2345-7"}, "value": 101, "unit": "mg/dL"}],
    }
    record.update(overrides)
    return json.dumps(record).encode()


def read(body: bytes, headers: dict[str, str] | None = None, max_bytes: int = 10_000):
    headers = headers or JSON_HEADERS
    envelope = envelope_of(headers, "aimass.ingest.raw/0/7", NOW)
    return read_document(body, headers, envelope, Pseudonymizer(KEY), max_bytes)


def test_canonical_json_becomes_a_pseudonymized_record() -> None:
    [record] = read(document())
    assert record.hospital == "cleveland"
    assert record.source_format == "json"
    assert record.demographics.age_years == 65 and record.demographics.sex == "female"
    assert record.observations[0].code.code == "2345-7" and record.observations[0].value == 101.0
    dumped = record.model_dump_json()
    assert "MRN-0042" not in dumped and "1961" not in dumped
    assert record.patient == Pseudonymizer(KEY)("cleveland", "MRN-0042")


def test_record_ids_are_stable_across_redelivery_and_distinct_per_message() -> None:
    headers = {**JSON_HEADERS, "ce_id": "msg-1"}
    assert read(document(), headers)[0].record_id == read(document(), headers)[0].record_id
    assert read(document(), headers)[0].record_id != read(document(), {**headers, "ce_id": "msg-2"})[0].record_id


def test_pseudonyms_differ_between_hospitals_and_keys() -> None:
    pseudonymize = Pseudonymizer(KEY)
    assert pseudonymize("cleveland", "MRN-1") == pseudonymize("cleveland", "MRN-1")
    assert pseudonymize("cleveland", "MRN-1") != pseudonymize("hungary", "MRN-1")
    assert pseudonymize("cleveland", "MRN-1") != Pseudonymizer(b"j" * 32)("cleveland", "MRN-1")


def test_ages_over_89_are_reported_as_90() -> None:
    assert age_in_years(date(1920, 1, 1), date(2026, 11, 29)) == 90
    assert age_in_years(date(2000, 12, 1), date(2026, 11, 29)) == 25
    [record] = read(document(birth_date=None, age_years=97))
    assert record.demographics.age_years == 90


def test_an_array_yields_one_record_each() -> None:
    body = json.dumps([json.loads(document()), json.loads(document(patient_id="MRN-7"))]).encode()
    records = read(body)
    assert len(records) == 2 and records[0].patient != records[1].patient


def test_content_type_is_sniffed_when_absent() -> None:
    assert read(document(), {"ce_source": "cleveland"})[0].source_format == "json"


@pytest.mark.parametrize(
    ("body", "headers", "reason_class", "says"),
    [
        (b'{"patient_id": "X", "observations": [', JSON_HEADERS, "malformed", "JSON:"),
        (b'{"sex": "female"}', JSON_HEADERS, "schema", "patient_id: Field required"),
        (document(age_years=-4, birth_date=None), JSON_HEADERS, "schema", "age_years"),
        (b"\xff\xfe", JSON_HEADERS, "encoding", "UTF-8"),
        (b"   ", JSON_HEADERS, "empty", "empty"),
        (b"x" * 20_000, JSON_HEADERS, "oversized", "exceeds the limit"),
        (b"hello, world", {"ce_source": "c"}, "unknown_format", "content-type"),
        (b"MSH|^~\\&|", {"ce_source": "c"}, "unsupported", "MSH-9"),
        (document(), {"ce_source": "c", "content-type": "application/x-unknown"}, "unknown_format", "unsupported"),
        (b"[" * 100 + b"]" * 100, JSON_HEADERS, "malformed", "nested deeper"),
    ],
)
def test_bad_documents_are_rejected_with_a_reason(body, headers, reason_class, says) -> None:
    with pytest.raises(RejectedInput) as caught:
        read(body, headers)
    assert caught.value.reason_class == reason_class
    assert says in caught.value.reason


def test_a_document_without_hospital_is_rejected() -> None:
    with pytest.raises(RejectedInput, match="ce_source"):
        envelope_of({"content-type": "application/json"}, "t/0/1", NOW)


def test_envelope_falls_back_to_the_record_position_for_the_message_id() -> None:
    assert envelope_of({"ce_source": "h"}, "t/0/1", NOW) == Envelope("h", "t/0/1", NOW)


def test_the_cyclic_collector_is_paused_while_a_document_is_read_and_back_after(monkeypatch) -> None:
    import gc

    from services.ingest import documents

    seen = []

    def parse(body: bytes, context: object) -> object:
        seen.append(gc.isenabled())
        if b"fail" in body:
            raise RejectedInput("bad", "malformed")
        return original(body, context)

    original = documents.PARSERS["application/json"][1]
    monkeypatch.setitem(documents.PARSERS, "application/json", ("json", parse))
    assert gc.isenabled()
    assert len(read(document())) == 1
    with pytest.raises(RejectedInput):
        read(b'{"fail": 1}')
    assert seen == [False, False] and gc.isenabled()
    gc.disable()  # a process that runs without the collector keeps running without it
    try:
        read(document())
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_a_platform_patient_reference_keeps_the_patient_for_its_hospital_only() -> None:
    """What the questioning page writes back names the patient by a sealed pseudonym: the same patient, no MRN."""
    known = Pseudonymizer(KEY)("cleveland", "MRN-0042")
    reference = patient_reference(KEY, "cleveland", known)
    [record] = read(document(patient_id=reference, birth_date=None, age_years=63))
    assert record.patient == known and record.demographics.age_years == 63
    assert Pseudonymizer(KEY).date_shift_days(known) == Pseudonymizer(KEY).date_shift_days(record.patient)
    as_hungary = {**JSON_HEADERS, "ce_source": "hungary"}
    forged = reference[:-1] + ("0" if reference[-1] != "0" else "1")
    for body, headers in ((document(patient_id=reference), as_hungary), (document(patient_id=forged), JSON_HEADERS)):
        with pytest.raises(RejectedInput) as rejected:
            read(body, headers)
        assert rejected.value.reason_class == "wrong_source" and "not made for this hospital" in rejected.value.reason
        assert known not in rejected.value.reason
