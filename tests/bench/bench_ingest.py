"""Parse throughput of ingest per format: documents/s through the pure ``read_document`` (parse, validate,
pseudonymize, build canonical records), one core, no broker. Inputs: the real UCI rows rendered per format, the
specification samples and pydicom's shipped CT/MR files."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path

from pydicom.data import get_testdata_file

from services.cli.scenario import formats
from services.ingest.documents import ReadOptions, envelope_of, read_document
from services.ingest.hospitals import load_tables
from services.ingest.pseudonym import Pseudonymizer
from shared.settings import PROJECT_ROOT, Settings

FIXTURES = PROJECT_ROOT / "tests" / "fixtures" / "ingest"
SECONDS_PER_CASE = 2.0


def _cases() -> list[tuple[str, str, str, list[bytes]]]:
    """(name, hospital, content-type, documents)."""
    from services.cli.scenario.heart import records_by_hospital

    rows = records_by_hospital(100)
    return [
        (
            "FHIR Bundle (Cleveland row)",
            "cleveland",
            "application/fhir+json",
            [json.dumps(formats.fhir_bundle(d)).encode() for d in rows["cleveland"]],
        ),
        (
            "FHIR Bundle (vitals and labs sample)",
            "cleveland",
            "application/fhir+json",
            [(FIXTURES / "vitals-and-labs.fhir.json").read_bytes()],
        ),
        (
            "HL7 v2 ORU^R01 (Hungary row)",
            "hungary",
            "x-application/hl7-v2+er7",
            [formats.hl7_oru(d).encode() for d in rows["hungary"]],
        ),
        (
            "CSV, 1 row (VA Long Beach)",
            "va-long-beach",
            "text/csv",
            [formats.csv_rows([d]).encode() for d in rows["va-long-beach"]],
        ),
        (
            "CSV, 100 rows (VA Long Beach)",
            "va-long-beach",
            "text/csv",
            [formats.csv_rows(rows["va-long-beach"]).encode()],
        ),
        (
            "canonical JSON (Switzerland row)",
            "switzerland",
            "application/json",
            [json.dumps(d).encode() for d in rows["switzerland"]],
        ),
        (
            "DICOM CT_small.dcm (claim check)",
            "cleveland",
            "application/dicom",
            [Path(get_testdata_file("CT_small.dcm")).read_bytes()],
        ),
        (
            "DICOM MR_small.dcm",
            "cleveland",
            "application/dicom",
            [Path(get_testdata_file("MR_small.dcm")).read_bytes()],
        ),
    ]


def _measure(hospital: str, content_type: str, documents: list[bytes], options: ReadOptions) -> tuple[float, float]:
    """(documents/s, records/s) over about SECONDS_PER_CASE seconds."""
    pseudonymize = Pseudonymizer(b"bench-key-0123456789abcdef")
    headers = {"ce_source": hospital, "content-type": content_type}
    done = records = 0
    started = time.perf_counter()
    while (elapsed := time.perf_counter() - started) < SECONDS_PER_CASE:
        for document in documents:
            envelope = envelope_of({**headers, "ce_id": str(done)}, "-", datetime.now(UTC))
            records += len(read_document(document, headers, envelope, pseudonymize, 10_000_000, options))
            done += 1
    return done / elapsed, records / elapsed


async def run(settings: Settings) -> str:
    import tempfile

    with tempfile.TemporaryDirectory() as data:
        # a threshold above CT_small's 32 KiB keeps disk writes (the handler's job) out of a parse benchmark
        options = ReadOptions(
            tables=load_tables(PROJECT_ROOT / "deploy" / "hospitals"), data_root=Path(data), claim_check_bytes=16_384
        )
        lines = [
            "### ingest: parse throughput per format",
            "",
            "| format | document | documents/s | records/s |",
            "|---|---|---:|---:|",
        ]
        for name, hospital, content_type, documents in _cases():
            per_second, records = _measure(hospital, content_type, documents, options)
            size = sum(len(d) for d in documents) // len(documents)
            lines.append(f"| {name} | {size:,} bytes | {per_second:,.0f} | {records:,.0f} |")
    lines += [
        "",
        "One core, `read_document` alone (parse, validate, pseudonymize, canonical records; for DICOM also "
        "pixel statistics and, for CT, the de-identified claim-check file in memory). The service adds the "
        "Kafka sends of each document's records, dead letters and audit event, acknowledged once per batch "
        "(see bench_ingest_kafka).",
        "",
    ]
    return "\n".join(lines)
