import pytest

from services.ingest.hl7v2 import HL7_CONTENT_TYPE, split_messages
from shared.errors import RejectedInput
from shared.schemas.records import LOINC, SNOMED
from tests.support.factories.ingest import by_code, fixture, pseudonymize, read, unshifted

HL7 = HL7_CONTENT_TYPE


def test_an_oru_r01_with_several_obx_becomes_a_record() -> None:
    ingested = read(fixture("lipid-panel.oru.hl7"), "hungary", HL7)
    [record] = ingested.records
    assert ingested.rejected == [] and record.source_format == "hl7v2"
    assert record.patient == pseudonymize("hungary", "OKI-4471093")  # the PID-3 repetition typed MR
    assert record.encounter == pseudonymize("hungary", "V-2026-8812", "encounter")
    assert record.demographics.age_years == 77 and record.demographics.sex == "female"
    assert unshifted(record, record.recorded_at).isoformat() == "2026-11-01T07:30:00+00:00"  # PV1-44 at +01:00
    observations = by_code(record)
    cholesterol = observations["2093-3"]
    assert (cholesterol.code.system, cholesterol.value, cholesterol.unit) == (LOINC, 262.0, "mg/dL")
    assert (cholesterol.reference_range, cholesterol.interpretation) == ("<200", "H")
    assert unshifted(record, cholesterol.time).isoformat() == "2026-11-01T07:15:00+00:00"
    assert observations["2085-9"].value == 38.5 and observations["2085-9"].interpretation == "L"
    assert observations["2345-7"].value_text == ">200"  # SN with a comparator stays text
    assert observations["8601-7"].value_code.system == SNOMED
    # the ST service comment is free text: dropped (the observation stays, without it), and counted
    assert observations["8251-1"].value_text is None and ingested.free_text_dropped == 1
    assert observations["2160-0"].value == 1.1


def test_a_text_result_a_task_allowlists_keeps_its_escapes_and_repetitions_decoded() -> None:
    ingested = read(fixture("lipid-panel.oru.hl7"), "hungary", HL7, free_text_codes={(LOINC, "8251-1")})
    # escape sequences (\T\ and \F\) and a repeated ST field
    assert by_code(ingested[0])["8251-1"].value_text == "Hemolysed & lipemic sample| repeat advised\nSecond line"
    assert ingested.free_text_dropped == 0


@pytest.mark.parametrize(
    ("kind", "value"),
    [("DT", "20261030"), ("TS", "20261030081500"), ("XPN", "Kovacs^Erzsebet"), ("XTN", "555-0143"), ("CX", "4471093")],
)
def test_results_typed_as_dates_names_phones_or_identifiers_are_not_carried(kind: str, value: str) -> None:
    text = fixture("lipid-panel.oru.hl7").decode().rstrip("\r") + f"\rOBX|7|{kind}|99999-9^Other^LN||{value}||||||F\r"
    [record] = read(text.encode(), "hungary", HL7, free_text_codes={(LOINC, "99999-9")})  # even when allowlisted
    other = by_code(record)["99999-9"]
    assert (other.value, other.value_code, other.value_text) == (None, None, None)


def test_mllp_framed_adt_and_oru_in_one_document() -> None:
    ingested = read(fixture("admission-and-result.mllp.hl7"), "hungary")  # sniffed: no content-type
    admission, result = ingested.records
    assert admission.patient == result.patient == pseudonymize("hungary", "OKI-9912230")
    assert admission.observations == [] and admission.demographics.age_years == 90  # born 1931: over 89
    assert by_code(result)["2093-3"].value == 189.0
    assert admission.record_id != result.record_id


@pytest.mark.parametrize("separator", ["\r", "\n", "\r\n"])
def test_segments_may_be_separated_by_any_line_break(separator: str) -> None:
    text = fixture("lipid-panel.oru.hl7").decode().replace("\r", separator)
    [record] = read(text.encode(), "hungary", HL7)
    assert len(record.observations) == 6


def test_a_non_numeric_nm_obx_is_rejected_alone_and_replayable() -> None:
    text = fixture("lipid-panel.oru.hl7").decode().replace("||262|", "||2G2|")
    ingested = read(text.encode(), "hungary", HL7)
    [record] = ingested.records
    assert "2093-3" not in by_code(record) and len(record.observations) == 5
    [part] = ingested.rejected
    assert part.reason == "HL7 OBX[1]-5 not numeric for NM" and part.label == "obx-1"
    segments = part.document.decode().split("\r")
    assert [s[:3] for s in segments] == ["MSH", "PID", "PV1", "OBR", "OBX"]
    [again] = read(part.document.replace(b"2G2", b"262"), "hungary", HL7, message_id="m-1#obx-1")
    assert again.patient == record.patient and by_code(again)["2093-3"].value == 262.0


def test_one_bad_message_in_a_batch_is_rejected_alone() -> None:
    good = fixture("lipid-panel.oru.hl7").decode()
    bad = "MSH|^~\\&|X|Y|Z|W|20261101||ORM^O01|9|P|2.5\rPID|1||A^^^^MR"
    ingested = read(f"{good}\n{bad}\n".encode(), "hungary", HL7)
    assert len(ingested.records) == 1
    [part] = ingested.rejected
    assert part.label == "message-1" and "MSH-9: message type ORM^O01 is not supported" in part.reason


def test_split_messages_strips_mllp_framing() -> None:
    framed = "\x0bMSH|^~\\&|A\rPID|1\r\x1c\r\x0bMSH|^~\\&|B\r\x1c\r"
    assert split_messages(framed) == ["MSH|^~\\&|A\rPID|1", "MSH|^~\\&|B"]


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("PID|1||A", "first segment is not MSH"),
        ("MSH|^~\\&|A|B|C|D|2026||ORU^R01|1|P|2.5\rOBX|1|NM|1^x^LN||5", "before any PID"),
        ("MSH|^~\\&|A|B|C|D|2026||ORU^R01|1|P|2.5\rPID|1||^^^^MR", "PID-3: no patient identifier"),
        ("MSH|^~\\&|A|B|C|D|2026||ORU^R01|1|P|2.5\rPID|1||X^^^^MR||N||19xx0101", "PID-7: not an HL7 date/time"),
        ("MSH|^~\\&|A|B|C|D|2026||ORU^R01|1|P|2.5", "PID: missing"),
    ],
)
def test_bad_hl7_is_rejected_with_a_reason(text: str, says: str) -> None:
    with pytest.raises(RejectedInput) as caught:
        read(text.encode(), "hungary", HL7)
    assert says in caught.value.reason
