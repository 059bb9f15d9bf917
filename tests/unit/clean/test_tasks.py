from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from services.cli.scenario.heart import canonical_record
from services.ingest.documents import envelope_of, read_document
from services.ingest.pseudonym import Pseudonymizer
from shared.tasks import FeatureSpec, feature_vector, label_of, load_tasks

ROW = {
    "id": 2,
    "age": 67,
    "sex": "Male",
    "dataset": "Cleveland",
    "cp": "asymptomatic",
    "trestbps": 160.0,
    "chol": 0.0,
    "fbs": False,
    "restecg": "lv hypertrophy",
    "thalch": 108.0,
    "exang": True,
    "oldpeak": 1.5,
    "slope": "flat",
    "ca": 3.0,
    "thal": float("nan"),
    "num": 2,
}


def heart_record():
    when = datetime(2026, 1, 5, tzinfo=UTC)
    body = __import__("json").dumps(canonical_record(ROW, when)).encode()
    headers = {"ce_source": "cleveland", "content-type": "application/json"}
    [record] = read_document(body, headers, envelope_of(headers, "t/0/0", when), Pseudonymizer(b"k" * 32), 10**6)
    return record


def test_the_shipped_tasks_load() -> None:
    tasks = load_tasks()
    assert {"heart_disease", "breast_cancer"} <= set(tasks)
    assert len(tasks["breast_cancer"].features) == 30


def test_heart_features_follow_the_declared_order_with_missing_left_missing() -> None:
    task = load_tasks()["heart_disease"]
    values = dict(zip(task.feature_names, feature_vector(heart_record(), task), strict=True))
    assert values["age"] == 67.0 and values["sex_male"] == 1.0
    assert values["chest_pain_asymptomatic"] == 1.0 and values["chest_pain_typical_angina"] == 0.0
    assert values["resting_systolic_bp"] == 160.0
    assert values["cholesterol"] is None  # recorded as 0: implausible, so missing
    assert values["fasting_glucose_high"] == 0.0 and values["exercise_angina"] == 1.0
    assert values["major_vessels"] == 3.0
    assert values["thallium_normal"] is None  # not recorded at all
    assert label_of(heart_record(), task) == 1.0


def test_a_feature_needs_exactly_one_source() -> None:
    with pytest.raises(ValidationError, match="exactly one"):
        FeatureSpec(name="x")


def test_task_files_declare_the_canonical_unit_of_each_code() -> None:
    from shared.tasks import canonical_units

    units = canonical_units(load_tasks().values())
    assert units[("http://loinc.org", "2093-3")] == "mg/dL"
    assert units[("http://loinc.org", "8480-6")] == "mm[Hg]"


def test_two_tasks_may_not_want_one_code_in_two_units() -> None:
    from shared.tasks import canonical_units

    heart = load_tasks()["heart_disease"]
    other = heart.model_copy(
        update={
            "name": "other",
            "features": [
                f.model_copy(update={"unit": "mmol/L"}) if f.name == "cholesterol" else f for f in heart.features
            ],
        }
    )
    with pytest.raises(ValueError, match="different units for 2093-3"):
        canonical_units([heart, other])
