import io

import pandas as pd
import pytest

from services.cli.scenario import formats
from services.ingest.csv_xlsx import CSV_CONTENT_TYPE, XLSX_CONTENT_TYPE
from shared.errors import RejectedInput
from tests.support.factories.ingest import by_code, fixture, pseudonymize, read

DOCUMENT = {
    "patient_id": "VA-LONG-BEACH-00721",
    "encounter_id": "ENC-00721",
    "recorded_at": "2026-02-04T08:00:00+00:00",
    "age_years": 63,
    "sex": "male",
    "observations": [
        {"code": {"system": "http://loinc.org", "code": "8480-6"}, "value": 140.0, "unit": "mm[Hg]"},
        {"code": {"system": "http://loinc.org", "code": "2093-3"}, "value": 260.0, "unit": "mg/dL"},
        {
            "code": {"system": "urn:aimass:code", "code": "exercise-angina"},
            "value_code": {"system": "urn:aimass:code", "code": "exercise-angina:true", "display": "true"},
        },
        {"code": {"system": "urn:aimass:code", "code": "uci-heart-diagnosis"}, "value": 2.0, "unit": "1"},
    ],
}


def test_va_long_beach_rows_are_mapped_by_its_hospital_file() -> None:
    csv_text = formats.csv_rows([DOCUMENT])
    assert "cholesterol_mmol_l" in csv_text.splitlines()[0] and "6.72" in csv_text
    [record] = read(csv_text.encode(), "va-long-beach", CSV_CONTENT_TYPE)
    assert record.patient == pseudonymize("va-long-beach", "VA-LONG-BEACH-00721")
    assert record.demographics.age_years == 63 and record.demographics.sex == "male"
    observations = by_code(record)
    assert (observations["14647-2"].value, observations["14647-2"].unit) == (6.72, "mmol/L")
    assert observations["8480-6"].value == 140.0 and observations["uci-heart-diagnosis"].value == 2.0
    assert observations["exercise-angina"].value_code.code == "exercise-angina:true"  # the hospital's Y, mapped


def test_a_bad_row_is_rejected_alone_as_a_one_row_csv() -> None:
    ingested = read(fixture("va-long-beach-with-a-bad-row.csv"), "va-long-beach")  # sniffed
    assert [r.demographics.age_years for r in ingested.records] == [65, 90]
    [part] = ingested.rejected
    assert part.reason == "CSV row 2 column 'resting_bp_mmhg': not a number" and part.label == "row-2"
    header, row = part.document.decode().splitlines()
    assert header.startswith("patient_no,") and row.startswith("VA-LB-300412,")
    [fixed] = read(part.document.replace(b",13O,", b",130,"), "va-long-beach", CSV_CONTENT_TYPE)
    assert by_code(fixed)["8480-6"].value == 130.0


def test_xlsx_uses_the_same_mapping() -> None:
    frame = pd.read_csv(io.StringIO(formats.csv_rows([DOCUMENT])), dtype=str, keep_default_na=False)
    buffer = io.BytesIO()
    frame.to_excel(buffer, index=False, engine="openpyxl")
    [record] = read(buffer.getvalue(), "va-long-beach")  # sniffed from the zip signature
    assert record.source_format == "xlsx" and by_code(record)["14647-2"].value == 6.72
    assert record.demographics.age_years == 63


@pytest.mark.parametrize(
    ("body", "hospital", "says"),
    [
        (b"a,b,c\n1,2,3\n", "nowhere", "no column mapping for hospital 'nowhere'"),
        (b"visit_no,gender,max_hr\n1,M,80\n", "va-long-beach", "column 'patient_no'"),
        (b"patient_no,gender,max_hr\n", "va-long-beach", "a header but no rows"),
        (b"patient_no,gender,max_hr\n,M,80\n", "va-long-beach", "empty patient identifier (all 1 rows rejected)"),
        (b"patient_no,visit_date\nX,yesterday\n", "va-long-beach", "column 'visit_date': not a date"),
        (b"patient_no,max_hr\nX,inf\n", "va-long-beach", "not a finite number"),
    ],
)
def test_bad_tables_are_rejected_with_a_reason(body: bytes, hospital: str, says: str) -> None:
    with pytest.raises(RejectedInput) as caught:
        read(body, hospital, CSV_CONTENT_TYPE)
    assert says in caught.value.reason


def test_garbage_declared_as_xlsx_is_rejected() -> None:
    with pytest.raises(RejectedInput, match="XLSX: cannot be read as a workbook"):
        read(b"PK\x03\x04 not really a zip", "va-long-beach", XLSX_CONTENT_TYPE)


@pytest.mark.parametrize("before", [b"", b"\n", b"\r\n", b"\n\n   \n"])
def test_a_header_too_wide_is_rejected_before_pandas_reads_it_even_after_blank_lines(before: bytes) -> None:
    # Found by the fuzz run: a blank first line hid a 30,000-column header from the check, and pandas took 8 s on it.
    header = b",".join(b"c%d" % n for n in range(30_000))
    with pytest.raises(RejectedInput) as caught:
        read(before + header + b"\n1,2,3\n", "va-long-beach", CSV_CONTENT_TYPE)
    assert caught.value.reason == "CSV: more than 1000 columns in the header row"
    assert caught.value.reason_class == "oversized"


@pytest.mark.parametrize("header", [b"patient_no", b"patien\r_no"])
def test_a_row_far_wider_than_its_header_is_rejected_before_pandas_reads_it(header: bytes) -> None:
    # Found by the fuzz run: pandas took 28 s and 3 GB on a 1-column header followed by a row of 20,000 fields.
    wide = b",".join(b"%d" % n for n in range(20_000))
    with pytest.raises(RejectedInput) as caught:
        read(header + b"\n" + wide + b"\n", "va-long-beach", CSV_CONTENT_TYPE)
    assert caught.value.reason.startswith("CSV: more than 1000 columns in the row at line ")
    assert caught.value.reason_class == "oversized"
