"""The fuzz run: mutated real documents, random bytes and hostile headers into ingest's parsers, and mutated
canonical records into clean's, in process. Fast by default (``make test``); ``AIMASS_FUZZ_INPUTS=100000`` is the
full run, with ``--timeout=0`` (a target's share then takes longer than the suite's 300 s per test; see harness.py
and docs/reliability-fuzz.md). Every target must end with zero crashes."""

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


def quota(target: str) -> int:
    return max(-(-TOTAL_INPUTS * SHARES[target] // 100), 10)


@pytest.fixture(scope="module", autouse=True)
def report() -> Iterator[FuzzRun]:
    yield RUN
    if RUN.report is not None:
        RUN.write(RUN.report)


def _bodies(content_type: str, token_kind: str) -> st.SearchStrategy[bytes]:
    return mutated_bytes([s.body for s in seeds_of(content_type)], TOKENS[token_kind])


def _document(content_type: str, hospital: str, bodies: st.SearchStrategy[bytes]) -> st.SearchStrategy:
    return st.tuples(bodies, st.just({"ce_source": hospital, "content-type": content_type}))


def _any_document() -> st.SearchStrategy:
    headers = st.builds(
        lambda h, c: {"ce_source": h} | ({"content-type": c} if c else {}),
        st.sampled_from(HOSPITALS),
        st.sampled_from(CONTENT_TYPES),
    )
    return st.tuples(st.binary(max_size=4096) | mutated_bytes([s.body for s in ingest_seeds()]), headers)


def _json_seeds(content_type: str) -> list[bytes]:
    return [s.body for s in seeds_of(content_type)]


# target -> (what to draw, what to call with it)
CASES = {
    "fhir": (
        _document(
            FHIR_CONTENT_TYPE,
            "cleveland",
            mutated_json(_json_seeds(FHIR_CONTENT_TYPE)) | _bodies(FHIR_CONTENT_TYPE, "json"),
        ),
        targets.ingest,
    ),
    "hl7": (_document(HL7_CONTENT_TYPE, "hungary", _bodies(HL7_CONTENT_TYPE, "hl7")), targets.ingest),
    "csv": (_document(CSV_CONTENT_TYPE, "va-long-beach", _bodies(CSV_CONTENT_TYPE, "csv")), targets.ingest),
    "xlsx": (_document(XLSX_CONTENT_TYPE, "va-long-beach", _bodies(XLSX_CONTENT_TYPE, "zip")), targets.ingest),
    "json": (
        _document(
            JSON_CONTENT_TYPE,
            "switzerland",
            mutated_json(_json_seeds(JSON_CONTENT_TYPE)) | _bodies(JSON_CONTENT_TYPE, "json"),
        ),
        targets.ingest,
    ),
    "dicom": (_document(DICOM_CONTENT_TYPE, "cleveland", _bodies(DICOM_CONTENT_TYPE, "dicom")), targets.ingest),
    "any": (_any_document(), targets.ingest),
    "headers": (
        st.tuples(st.sampled_from([s.body for s in ingest_seeds()]), hostile_headers()),
        targets.ingest_raw_headers,
    ),
    "clean": (st.tuples(mutated_json(clean_seeds()) | mutated_bytes(clean_seeds(), TOKENS["json"])), targets.clean),
}


@pytest.mark.parametrize("target", list(SHARES))
def test_fuzz(target: str) -> None:
    """The target's share of the inputs, then zero crashes. Hypothesis may end a run before ``max_examples`` when it
    judges the space explored, so rounds are repeated (each with fresh randomness) until the share is reached."""
    draw, call = CASES[target]
    for _ in range(50):
        left = quota(target) - (RUN.targets[target].inputs if target in RUN.targets else 0)
        if left <= 0:
            break

        @settings(max_examples=left, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        @given(args=draw)
        def one_round(args: tuple) -> None:
            sample = b"%r" % (args[1],) if target == "headers" else args[0]
            RUN.feed(target, sample, lambda: call(*args))

        one_round()
    crashes = RUN.crashes_of(target)
    assert RUN.targets[target].inputs >= quota(target)
    assert crashes == [], f"{len(crashes)} crashes in {RUN.targets[target].inputs} inputs; first: {crashes[:3]}"
