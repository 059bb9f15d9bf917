import pytest

from services.clean.analytes import ANALYTES
from services.clean.units import UnitProblem, conversion, round_significant

ANALYTE = {a.name: a for a in ANALYTES}


@pytest.mark.parametrize(
    ("value", "from_unit", "to_unit", "analyte", "expected"),
    [
        (100.0, "mg/dL", "mmol/L", "glucose", 100 / 18.0156),
        (5.0, "mmol/L", "mg/dL", "cholesterol", 5.0 * 38.665),
        (200.0, "mg/dL", "mmol/L", "cholesterol", 200 / 38.665),
        (1.0, "mg/dL", "umol/L", "creatinine", 1e4 / 113.12),  # the clinical factor 88.42, from the molar mass
        (1e4 / 113.12, "umol/L", "mg/dL", "creatinine", 1.0),
        (6.5, "%", "mmol/mol", "hba1c", (6.5 - 2.15) * 10.929),
        (48.0, "mmol/mol", "%", "hba1c", 48.0 / 10.929 + 2.15),
        (98.6, "[degF]", "Cel", None, 37.0),
        (154.0, "[lb_av]", "kg", None, 154.0 * 0.45359237),
        (70.0, "[in_i]", "cm", None, 177.8),
        (3.0, "1", "%", None, 300.0),
    ],
)
def test_conversions_match_the_clinical_factors(value, from_unit, to_unit, analyte, expected) -> None:
    affine = conversion(from_unit, to_unit, ANALYTE.get(analyte))
    assert affine(value) == pytest.approx(expected, rel=1e-4)


def test_a_round_trip_gives_back_the_value() -> None:
    glucose = ANALYTE["glucose"]
    there = conversion("mg/dL", "mmol/L", glucose)(126.0)
    assert conversion("mmol/L", "mg/dL", glucose)(there) == 126.0


def test_text_that_is_not_ucum_is_an_unknown_unit() -> None:
    with pytest.raises(UnitProblem) as problem:
        conversion("milligrams per decilitre", "mg/dL", ANALYTE["cholesterol"])
    assert problem.value.kind == "unknown_unit"


def test_a_molar_unit_without_a_molar_mass_is_incompatible() -> None:
    with pytest.raises(UnitProblem) as problem:
        conversion("mmol/L", "mg/dL", ANALYTE["systolic_bp"])
    assert problem.value.kind == "incompatible_unit"


def test_a_mass_is_not_a_concentration() -> None:
    with pytest.raises(UnitProblem, match="cannot be converted") as problem:
        conversion("mg", "mg/dL", ANALYTE["glucose"])
    assert problem.value.kind == "incompatible_unit"


def test_hba1c_is_never_converted_as_a_plain_ratio() -> None:
    # pint alone would turn 6.5 % into 65 mmol/mol; the IFCC master equation gives 47.5.
    assert conversion("%", "mmol/mol", ANALYTE["hba1c"])(6.5) == pytest.approx(47.54, abs=0.01)
    with pytest.raises(UnitProblem):
        conversion("1", "%", ANALYTE["hba1c"])


def test_float_noise_is_rounded_away() -> None:
    assert round_significant(37.00000000000006) == 37.0
    assert round_significant(0.0) == 0.0
    assert round_significant(1.7976931345e308) == 1.7976931345e308, "rounding up would overflow: kept as sent"


@pytest.mark.parametrize("unit", ["Cel", "[degF]", "dB", "B[mV]"])
def test_offset_and_logarithmic_units_never_pass_as_concentrations(unit: str) -> None:
    with pytest.raises(UnitProblem) as problem:
        conversion(unit, "mg/dL", ANALYTE["glucose"])
    assert problem.value.kind == "incompatible_unit"


def test_a_logarithmic_unit_is_not_treated_as_linear() -> None:
    with pytest.raises(UnitProblem, match="not linear"):
        conversion("dB", "1")


def test_units_a_sender_makes_up_grow_neither_the_caches_nor_the_series() -> None:
    """UCUM annotations make any text a valid unit ("mg{lab-7}/dL" is mg/dL): one sender writing a new one per
    record must not grow clean's memory or its Prometheus series without end."""
    from prometheus_client import CollectorRegistry

    from services.clean.metrics import MAX_UNITS, CleanMetrics
    from services.clean.units import UNIT_CACHE_SIZE, ucum_unit
    from tests.support.factories.clean import cleaner, document, record_of

    clean, registry = cleaner(), CollectorRegistry()
    metrics = CleanMetrics(registry)
    for i in range(UNIT_CACHE_SIZE + 100):
        unit = f"mg{{lab-{i}}}/dL"
        cleaned = clean.clean(record_of(document(c=("http://loinc.org", "2093-3", 200.0, unit)), "cleveland"))
        assert cleaned.conversions == [(unit, "mg/dL")]
        metrics.emitted(cleaned)
    assert ucum_unit.cache_info().currsize <= UNIT_CACHE_SIZE
    series = [
        s.labels["from_unit"]
        for m in registry.collect()
        for s in m.samples
        if s.name == "aimass_clean_unit_conversions_total"
    ]
    assert len(set(series)) <= MAX_UNITS + 1 and "other" in series
