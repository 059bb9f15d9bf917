import math

import pytest

from services.clean.cleaning import Cleaner
from services.clean.codes import CodeBook, CodeTable
from shared.schemas.records import AIMASS_CODES, LOINC
from shared.tasks import load_tasks
from tests.support.factories.clean import GLUCOSE_MG_PER_MMOL, cleaner, document, heart_document, record_of

CLEAN = cleaner()


def observation(cleaned, code):
    return next(o for o in cleaned.record.observations if o.code.code == code)


def flags(cleaned, kind):
    return [(f.field, f.detail) for f in cleaned.record.quality_flags if f.kind == kind]


def test_glucose_in_mg_per_dl_and_in_mmol_per_l_give_the_same_canonical_value() -> None:
    in_mass = CLEAN.clean(record_of(document(g=(LOINC, "2345-7", 99.0, "mg/dL")), "cleveland"))
    in_moles = CLEAN.clean(record_of(document(g=(LOINC, "14749-6", 99.0 / GLUCOSE_MG_PER_MMOL, "mmol/L")), "hungary"))
    a, b = observation(in_mass, "2345-7"), observation(in_moles, "2345-7")
    assert (a.value, a.unit) == (b.value, b.unit) == (99.0, "mg/dL")
    assert a.as_sent is None
    assert b.as_sent.code.code == "14749-6" and b.as_sent.unit == "mmol/L"
    assert in_moles.conversions == [("mmol/L", "mg/dL")] and in_mass.conversions == []


def test_a_local_code_maps_through_the_hospital_table() -> None:
    cleaned = CLEAN.clean(record_of(document(g=("urn:hospital:hungary:lab", "GLUK", 5.5, "mmol/l")), "hungary"))
    glucose = observation(cleaned, "2345-7")
    assert glucose.code.system == LOINC
    assert glucose.value == pytest.approx(5.5 * GLUCOSE_MG_PER_MMOL)
    assert not flags(cleaned, "unmapped_code")


def test_the_same_local_code_from_another_hospital_is_unmapped_kept_and_flagged() -> None:
    cleaned = CLEAN.clean(record_of(document(g=("urn:hospital:hungary:lab", "GLUK", 5.5, "mmol/L")), "cleveland"))
    [kept] = cleaned.record.observations
    assert (kept.code.system, kept.code.code, kept.value, kept.unit) == (
        "urn:hospital:hungary:lab",
        "GLUK",
        5.5,
        "mmol/L",
    )
    [(field, detail)] = flags(cleaned, "unmapped_code")
    assert field == "GLUK" and "cleveland v1" in detail
    assert cleaned.unmapped_codes == 1


def test_cholesterol_zero_is_flagged_implausible_and_missing_with_the_sent_value_kept() -> None:
    cleaned = CLEAN.clean(record_of(heart_document(chol=0.0, dataset="Switzerland"), "switzerland"))
    cholesterol = observation(cleaned, "2093-3")
    assert cholesterol.value is None and cholesterol.as_sent.value == 0.0
    assert ("2093-3", "cholesterol outside the plausible range 40-1000 mg/dL; treated as missing") in flags(
        cleaned, "implausible"
    )
    heart = cleaned.record.features["heart_disease"]
    assert dict(zip(heart.names, heart.values, strict=True))["cholesterol"] is None
    assert ("cholesterol", "heart_disease") in flags(cleaned, "missing")
    assert cleaned.implausible == ["cholesterol"]


@pytest.mark.parametrize("pressure", [0.0, 400.0])
def test_impossible_systolic_pressure_is_missing(pressure: float) -> None:
    cleaned = CLEAN.clean(record_of(heart_document(trestbps=pressure), "cleveland"))
    heart = cleaned.record.features["heart_disease"]
    assert dict(zip(heart.names, heart.values, strict=True))["resting_systolic_bp"] is None
    assert [f for f, _ in flags(cleaned, "implausible")] == ["8480-6"]


def test_a_value_the_task_finds_implausible_is_flagged_by_feature() -> None:
    cleaned = CLEAN.clean(record_of(heart_document(thalch=20.0), "cleveland"))  # task range 50-230 /min
    assert [f for f, _ in flags(cleaned, "implausible")] == ["max_heart_rate"]
    assert cleaned.implausible == ["max_heart_rate"]


def test_an_unknown_unit_is_flagged_and_never_guessed() -> None:
    cleaned = CLEAN.clean(record_of(document(c=(LOINC, "2093-3", 5.2, "millimoles")), "cleveland"))
    [kept] = cleaned.record.observations
    assert (kept.value, kept.unit) == (5.2, "millimoles")
    [(field, detail)] = flags(cleaned, "unknown_unit")
    assert field == "2093-3" and "not a UCUM unit" in detail


def test_an_incompatible_unit_is_flagged() -> None:
    cleaned = CLEAN.clean(record_of(document(c=(LOINC, "2093-3", 5.2, "mg")), "cleveland"))
    assert [f for f, _ in flags(cleaned, "incompatible_unit")] == ["2093-3"]


def test_a_missing_unit_is_flagged_unless_the_canonical_unit_is_a_count() -> None:
    no_unit = CLEAN.clean(record_of(document(c=(LOINC, "2093-3", 200.0, None)), "cleveland"))
    assert [f for f, _ in flags(no_unit, "unknown_unit")] == ["2093-3"]
    vessels = CLEAN.clean(record_of(document(v=(AIMASS_CODES, "major-vessels", 2.0, None)), "cleveland"))
    assert not flags(vessels, "unknown_unit") and observation(vessels, "major-vessels").unit == "1"


def test_unit_spellings_hospitals_use_are_read_as_their_ucum_code() -> None:
    cleaned = CLEAN.clean(
        record_of(
            document(
                t=(LOINC, "8310-5", 98.6, "°F"),
                p=(LOINC, "8480-6", 120.0, "mmHg"),
                w=(LOINC, "29463-7", 154.0, "lbs"),
                h=(LOINC, "8302-2", 70.0, "in"),
            ),
            "cleveland",
        )
    )
    values = {o.code.code: (o.value, o.unit) for o in cleaned.record.observations}
    assert values["8310-5"] == (37.0, "Cel")
    assert values["8480-6"] == (120.0, "mm[Hg]")
    assert values["29463-7"][0] == pytest.approx(69.85, abs=0.01) and values["29463-7"][1] == "kg"
    assert values["8302-2"] == (177.8, "cm")
    assert not cleaned.record.quality_flags


def test_hba1c_percent_and_ifcc_land_on_one_value() -> None:
    ngsp = CLEAN.clean(record_of(document(a=(LOINC, "4548-4", 6.5, "%")), "cleveland"))
    ifcc = CLEAN.clean(record_of(document(a=(LOINC, "59261-8", (6.5 - 2.15) * 10.929, "mmol/mol")), "hungary"))
    assert observation(ngsp, "4548-4").value == observation(ifcc, "4548-4").value == 6.5


def test_features_only_for_the_tasks_a_record_belongs_to() -> None:
    cleaned = CLEAN.clean(record_of(heart_document(), "cleveland"))
    assert set(cleaned.record.features) == {"heart_disease"}
    heart = cleaned.record.features["heart_disease"]
    assert heart.names == load_tasks()["heart_disease"].feature_names
    assert heart.label == 1.0
    assert not [f for f in cleaned.record.quality_flags if f.kind == "missing"]
    glucose_only = CLEAN.clean(record_of(document(g=(LOINC, "2345-7", 99.0, "mg/dL")), "cleveland"))
    assert glucose_only.record.features == {}


def test_missing_features_stay_missing_and_are_flagged() -> None:
    cleaned = CLEAN.clean(record_of(heart_document(thal=math.nan, ca=math.nan), "cleveland"))
    heart = cleaned.record.features["heart_disease"]
    values = dict(zip(heart.names, heart.values, strict=True))
    assert values["major_vessels"] is None and values["thallium_normal"] is None
    assert {f for f, _ in flags(cleaned, "missing")} == {
        "major_vessels",
        "thallium_normal",
        "thallium_fixed_defect",
        "thallium_reversable_defect",
    }


def test_an_unmapped_condition_code_is_kept_and_flagged() -> None:
    doc = document()
    doc["conditions"] = [{"code": {"system": "urn:hospital:x:dx", "code": "CAD"}}]
    cleaned = CLEAN.clean(record_of(doc, "cleveland"))
    assert cleaned.record.conditions[0].code.code == "CAD"
    assert [f for f, _ in flags(cleaned, "unmapped_code")] == ["CAD"]


def test_a_task_unit_other_than_the_analyte_default_becomes_the_canonical_one() -> None:
    tasks = load_tasks()
    heart = tasks["heart_disease"]
    features = [
        f.model_copy(update={"unit": "mmol/L", "plausible": (1.0, 20.0)}) if f.name == "cholesterol" else f
        for f in heart.features
    ]
    in_mmol = {"heart_disease": heart.model_copy(update={"features": features})}
    cleaned = Cleaner(in_mmol, CodeBook([CodeTable(hospital="*", version=1)])).clean(
        record_of(heart_document(chol=386.65), "cleveland")
    )
    cholesterol = observation(cleaned, "2093-3")
    assert (cholesterol.value, cholesterol.unit) == (10.0, "mmol/L")
    values = cleaned.record.features["heart_disease"].values
    assert values[cleaned.record.features["heart_disease"].names.index("cholesterol")] == 10.0


def test_one_shared_vital_sign_does_not_make_a_heart_disease_case() -> None:
    pressure_only = CLEAN.clean(record_of(document(p=(LOINC, "8480-6", 120.0, "mm[Hg]")), "cleveland"))
    assert pressure_only.record.features == {}
    unlabelled = heart_document()
    unlabelled["observations"] = [o for o in unlabelled["observations"] if o["code"]["code"] != "uci-heart-diagnosis"]
    cleaned = CLEAN.clean(record_of(unlabelled, "cleveland"))
    assert cleaned.record.features["heart_disease"].label is None
    assert cleaned.record.features["heart_disease"].values[0] == 67.0
