from pathlib import Path

import pytest

from services.clean.code_files import CodeTableError, load_code_book, load_code_table
from services.clean.codes import CodeBook, CodeTable
from shared.schemas.records import LOINC, Code
from shared.settings import PROJECT_ROOT

CODES = PROJECT_ROOT / "deploy" / "codes"


def test_the_shipped_tables_load_with_a_version_each() -> None:
    book = load_code_book(CODES)
    assert set(book.versions()) == {"*", "cleveland", "hungary", "va-long-beach", "switzerland"}
    assert all(version >= 1 for version in book.versions().values())


def test_a_hospital_table_adds_to_the_default_and_wins() -> None:
    default = CodeTable.model_validate(
        {
            "hospital": "*",
            "version": 3,
            "units": {"mg/dl": "mg/dL", "x": "1"},
            "codes": [{"from": {"system": "urn:l", "code": "A"}, "to": {"system": LOINC, "code": "1-1"}}],
        }
    )
    own = CodeTable.model_validate(
        {
            "hospital": "h",
            "version": 2,
            "units": {"x": "/min"},
            "codes": [{"from": {"system": "urn:l", "code": "A"}, "to": {"system": LOINC, "code": "2-2"}}],
        }
    )
    codes = CodeBook([default, own]).for_hospital("h")
    assert codes.translate(Code(system="urn:l", code="A")).code == "2-2"
    assert codes.ucum("x") == "/min" and codes.ucum(" mg/dl ") == "mg/dL" and codes.ucum("kg") == "kg"
    assert codes.label == "* v3 + h v2"
    other = CodeBook([default, own]).for_hospital("elsewhere")
    assert other.translate(Code(system="urn:l", code="A")).code == "1-1"


def test_standard_codes_pass_and_local_ones_need_a_mapping() -> None:
    codes = CodeBook([]).for_hospital("h")
    assert codes.translate(Code(system=LOINC, code="2093-3")).code == "2093-3"
    assert codes.translate(Code(system="urn:local", code="CHOL")) is None


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_a_code_mapped_twice_is_refused(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "h.yaml",
        """
hospital: h
version: 1
codes:
  - {from: {system: "urn:l", code: "A"}, to: {system: "http://loinc.org", code: "1"}}
  - {from: {system: "urn:l", code: "A"}, to: {system: "http://loinc.org", code: "2"}}
""",
    )
    with pytest.raises(CodeTableError, match="mapped twice"):
        load_code_table(path)


def test_the_file_name_must_be_the_hospital(tmp_path: Path) -> None:
    with pytest.raises(CodeTableError, match=r"must be h\.yaml"):
        load_code_table(write(tmp_path, "other.yaml", "hospital: h\nversion: 1\n"))


def test_a_unit_alias_must_lead_to_ucum(tmp_path: Path) -> None:
    with pytest.raises(CodeTableError, match="not a UCUM unit"):
        load_code_table(write(tmp_path, "h.yaml", "hospital: h\nversion: 1\nunits: {mgdl: milligram-ish}\n"))


def test_a_table_without_a_version_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CodeTableError, match="version"):
        load_code_table(write(tmp_path, "h.yaml", "hospital: h\n"))
