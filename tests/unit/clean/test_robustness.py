"""Whatever a hospital sends in codes, values and units, clean returns a record (flags, not exceptions)."""

import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.schemas import CanonicalRecord, CleanRecord
from shared.schemas.records import AIMASS_CODES, LOINC, Code, Observation
from tests.support.factories.clean import cleaner, heart_document, record_of

CLEAN = cleaner()
BASE = record_of(heart_document(), "hungary")
CODES = [(LOINC, c) for c in ("2093-3", "14647-2", "2345-7", "4548-4", "59261-8", "8480-6", "8310-5", "1-1")] + [
    (AIMASS_CODES, "max-heart-rate"),
    (AIMASS_CODES, "major-vessels"),
    ("urn:hospital:hungary:lab", "KOL-MMOL"),
    ("urn:x", "y"),
]
UNITS = [
    None,
    "",
    "mg/dL",
    "mmol/l",
    "%",
    "mmol/mol",
    "Cel",
    "°F",
    "dB",
    "mg",
    "1",
    "/min",
    "Hgmm",
    "10*3/uL",
    "not a unit",
    "{beats}/min",
    "kg/m2",
]
VALUES = st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True), st.integers(-(10**6), 10**6).map(float))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(CODES), VALUES, st.sampled_from(UNITS)), max_size=8))
def test_any_mix_of_codes_values_and_units_gives_a_record_with_finite_or_missing_features(observations) -> None:
    extra = [Observation(code=Code(system=s, code=c), value=v, unit=u) for (s, c), v, u in observations]
    record = CanonicalRecord(**{**dict(BASE), "observations": [*BASE.observations, *extra]})
    cleaned = CLEAN.clean(record).record
    for features in cleaned.features.values():
        assert all(v is None or math.isfinite(v) for v in features.values)
    assert len(cleaned.observations) == len(record.observations)
    CleanRecord.model_validate_json(cleaned.model_dump_json())  # serializable, and valid for its consumers
