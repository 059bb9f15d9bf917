"""The fuzz run: mutated real documents, random bytes and hostile headers into ingest's parsers, and mutated
canonical records into clean's, in process. Fast by default (``make test``); ``AIMASS_FUZZ_INPUTS=100000`` is the
full run (see harness.py and docs/reliability-fuzz.md). Every target must end with zero crashes."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.ingest.csv_xlsx import CSV_CONTENT_TYPE, XLSX_CONTENT_TYPE
from services.ingest.dicom import DICOM_CONTENT_TYPE
from services.ingest.documents import JSON_CONTENT_TYPE, PARSERS
from services.ingest.fhir import FHIR_CONTENT_TYPE
from services.ingest.hl7v2 import HL7_CONTENT_TYPE
from tests.fuzz import targets
from tests.fuzz.harness import TOTAL_INPUTS, FuzzRun
from tests.fuzz.mutations import TOKENS, hostile_headers, mutated_bytes, mutated_json
from tests.fuzz.seeds import clean_seeds, ingest_seeds, seeds_of

# Share of the inputs per target (percent).
SHARES = {"fhir": 14, "hl7": 14, "csv": 9, "xlsx": 5, "json": 9, "dicom": 10, "any": 12, "headers": 12, "clean": 15}
RUN = FuzzRun(report=Path(os.environ["AIMASS_FUZZ_REPORT"]) if os.environ.get("AIMASS_FUZZ_REPORT") else None)
HOSPITALS = ["cleveland", "hungary", "va-long-beach", "switzerland"]
CONTENT_TYPES = [*PARSERS, None, "application/octet-stream", "text/plain"]


def fuzz(target: str) -> settings:
    examples = max(-(-TOTAL_INPUTS * SHARES[target] // 100), 10)
    return settings(max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module", autouse=True)
def report() -> Iterator[FuzzRun]:
    yield RUN
    if RUN.report is not None:
        RUN.write(RUN.report)


def feed(target: str, body: bytes, headers: dict[str, str]) -> None:
    RUN.feed(target, body, lambda: targets.ingest(body, headers))


def assert_no_crash(target: str) -> None:
    crashes = RUN.crashes_of(target)
    assert RUN.targets[target].inputs > 0
    assert crashes == [], f"{len(crashes)} crashes in {RUN.targets[target].inputs} inputs; first: {crashes[:3]}"


def _bodies(content_type: str, token_kind: str) -> st.SearchStrategy[bytes]:
    return mutated_bytes([s.body for s in seeds_of(content_type)], TOKENS[token_kind])


def _hospital_of(content_type: str) -> str:
    return seeds_of(content_type)[0].hospital


@fuzz("fhir")
@given(body=mutated_json([s.body for s in seeds_of(FHIR_CONTENT_TYPE)]) | _bodies(FHIR_CONTENT_TYPE, "json"))
def test_fhir(body: bytes) -> None:
    feed("fhir", body, {"ce_source": "cleveland", "content-type": FHIR_CONTENT_TYPE})


@fuzz("hl7")
@given(body=_bodies(HL7_CONTENT_TYPE, "hl7"))
def test_hl7_v2(body: bytes) -> None:
    feed("hl7", body, {"ce_source": "hungary", "content-type": HL7_CONTENT_TYPE})


@fuzz("csv")
@given(body=_bodies(CSV_CONTENT_TYPE, "csv"))
def test_csv(body: bytes) -> None:
    feed("csv", body, {"ce_source": "va-long-beach", "content-type": CSV_CONTENT_TYPE})


@fuzz("xlsx")
@given(body=_bodies(XLSX_CONTENT_TYPE, "zip"))
def test_xlsx(body: bytes) -> None:
    feed("xlsx", body, {"ce_source": "va-long-beach", "content-type": XLSX_CONTENT_TYPE})


@fuzz("json")
@given(body=mutated_json([s.body for s in seeds_of(JSON_CONTENT_TYPE)]) | _bodies(JSON_CONTENT_TYPE, "json"))
def test_canonical_json(body: bytes) -> None:
    feed("json", body, {"ce_source": "switzerland", "content-type": JSON_CONTENT_TYPE})


@fuzz("dicom")
@given(body=_bodies(DICOM_CONTENT_TYPE, "dicom"))
def test_dicom(body: bytes) -> None:
    feed("dicom", body, {"ce_source": "cleveland", "content-type": DICOM_CONTENT_TYPE})


@fuzz("any")
@given(body=st.binary(max_size=4096) | mutated_bytes([s.body for s in ingest_seeds()]),
       hospital=st.sampled_from(HOSPITALS), content_type=st.sampled_from(CONTENT_TYPES))
def test_any_bytes_as_any_format(body: bytes, hospital: str, content_type: str | None) -> None:
    headers = {"ce_source": hospital} | ({"content-type": content_type} if content_type else {})
    feed("any", body, headers)


@fuzz("headers")
@given(body=st.sampled_from([s.body for s in ingest_seeds()]), raw_headers=hostile_headers())
def test_hostile_headers(body: bytes, raw_headers: list[tuple[str, bytes | None]]) -> None:
    RUN.feed("headers", b"%r" % raw_headers, lambda: targets.ingest_raw_headers(body, raw_headers))


@fuzz("clean")
@given(value=mutated_json(clean_seeds()) | mutated_bytes(clean_seeds(), TOKENS["json"]))
def test_clean(value: bytes) -> None:
    RUN.feed("clean", value, lambda: targets.clean(value))


@pytest.mark.parametrize("target", list(SHARES))
def test_no_crashes(target: str) -> None:
    """One verdict per target, after its inputs ran (pytest runs this module top to bottom)."""
    if target not in RUN.targets:
        pytest.skip(f"the {target} fuzz test did not run in this session")
    assert_no_crash(target)
