"""Thousands of random and mutated documents against the pure read_document: every one is either records (valid,
serializable) or a RejectedInput with a reason; nothing else ever escapes (an escape would be a poison message
that the consumer retries forever)."""

from __future__ import annotations

import json
import string

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom.data import get_testdata_file

from services.cli.scenario import formats
from services.ingest.documents import PARSERS
from shared.errors import RejectedInput
from shared.schemas import CanonicalRecord
from tests.fuzz.mutations import mutated_bytes
from tests.support.factories.ingest import fixture, read

CONTENT_TYPES = [*PARSERS, None, "application/octet-stream"]
HOSPITALS = ["cleveland", "hungary", "va-long-beach", "switzerland"]
FUZZ = settings(
    max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
_SCENARIO = {
    "patient_id": "FUZZ-00001",
    "encounter_id": "ENC-1",
    "recorded_at": "2026-01-05T08:00:00+00:00",
    "age_years": 54,
    "sex": "female",
    "observations": [
        {
            "code": {"system": "http://loinc.org", "code": "8480-6"},
            "value": 130.0,
            "unit": "mm[Hg]",
            "time": "2026-01-05T08:00:00+00:00",
        }
    ],
}
SEEDS = [
    fixture("vitals-and-labs.fhir.json"),
    fixture("lipid-panel.oru.hl7"),
    fixture("admission-and-result.mllp.hl7"),
    fixture("va-long-beach-with-a-bad-row.csv"),
    json.dumps(formats.fhir_bundle(_SCENARIO)).encode(),
    formats.hl7_oru(_SCENARIO).encode(),
    formats.csv_rows([_SCENARIO]).encode(),
    json.dumps(_SCENARIO).encode(),
    open(get_testdata_file("MR_small.dcm"), "rb").read(),  # noqa: SIM115 - read once at import
]


def check(body: bytes, hospital: str, content_type: str | None) -> None:
    try:
        ingested = read(body, hospital, content_type, claim_check_bytes=1 << 30)
    except RejectedInput as rejected:
        assert rejected.reason and rejected.reason_class
        return
    assert ingested.records, "a document that is not rejected has records"
    for record in ingested.records:
        CanonicalRecord.model_validate_json(record.model_dump_json())
    for part in ingested.rejected:
        assert part.reason and part.document and part.content_type in PARSERS


# The unit-test profile of the fuzz run's mutations: no repeats or overwrites, so 4,000 cases stay quick.
TOKENS = (
    b"|",
    b"^",
    b"~",
    b"\\",
    b"&",
    b"\r",
    b"\n",
    b",",
    b'"',
    b"{",
    b"}",
    b"[",
    b"]",
    b"null",
    b"-1e400",
    b"NaN",
    b"\x00",
    b"\xff",
    b"MSH|",
)


def mutated() -> st.SearchStrategy[bytes]:
    return mutated_bytes(SEEDS, tokens=TOKENS, actions=("flip", "cut", "insert", "delete", "splice"))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=25,
)
FHIR_KEYS = [
    "resourceType",
    "status",
    "code",
    "coding",
    "system",
    "subject",
    "reference",
    "valueQuantity",
    "value",
    "component",
    "identifier",
    "birthDate",
    "gender",
    "entry",
    "resource",
    "fullUrl",
    "encounter",
    "period",
]


@st.composite
def fhir_like(draw: st.DrawFn) -> bytes:
    resource = draw(st.dictionaries(st.sampled_from(FHIR_KEYS), json_values, max_size=8))
    resource["resourceType"] = draw(
        st.sampled_from(
            ["Patient", "Observation", "Condition", "Encounter", "DiagnosticReport", "Bundle", "Practitioner"]
        )
    )
    if resource["resourceType"] == "Bundle":
        resource["entry"] = draw(
            st.lists(
                st.fixed_dictionaries(
                    {"resource": st.dictionaries(st.sampled_from(FHIR_KEYS), json_values, max_size=6)}
                ),
                max_size=5,
            )
        )
    return json.dumps(resource).encode()


hl7_fields = st.text(alphabet=string.ascii_letters + string.digits + "^~&\\.-+ ", max_size=16)


@st.composite
def hl7_like(draw: st.DrawFn) -> bytes:
    segments = [f"MSH|^~\\&|A|B|C|D|{draw(hl7_fields)}||{draw(st.sampled_from(['ORU^R01', 'ADT^A01', 'X']))}|1|P|2.5"]
    for _ in range(draw(st.integers(0, 8))):
        name = draw(st.sampled_from(["PID", "PV1", "OBR", "OBX", "NTE", "ZZZ"]))
        segments.append("|".join([name, *draw(st.lists(hl7_fields, max_size=16))]))
    return draw(st.sampled_from(["\r", "\n", "\r\n"])).join(segments).encode()


@FUZZ
@given(body=st.binary(max_size=2048), hospital=st.sampled_from(HOSPITALS), content_type=st.sampled_from(CONTENT_TYPES))
def test_random_bytes(body: bytes, hospital: str, content_type: str | None) -> None:
    check(body, hospital, content_type)


@FUZZ
@given(body=mutated(), hospital=st.sampled_from(HOSPITALS), content_type=st.sampled_from(CONTENT_TYPES))
def test_mutated_real_documents(body: bytes, hospital: str, content_type: str | None) -> None:
    check(body, hospital, content_type)


@FUZZ
@given(body=fhir_like())
def test_random_fhir_resources(body: bytes) -> None:
    check(body, "cleveland", "application/fhir+json")


@FUZZ
@given(body=hl7_like())
def test_random_hl7_messages(body: bytes) -> None:
    check(body, "hungary", "x-application/hl7-v2+er7")
