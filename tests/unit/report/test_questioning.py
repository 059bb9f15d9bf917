"""Questioning's domain: value of information over real models, the stop rule, the catalogue, answers that clean
turns back into the same features."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from services.clean.cleaning import Cleaner
from services.clean.codes import CodeBook, CodeTable
from services.report.inputs import input_groups
from services.report.questioning import (
    ServedModel,
    answer_observation,
    answer_update,
    apply_answer,
    assess,
    distribution_source,
    missing_inputs,
    question,
    questions,
)
from services.train.dataset import split
from services.train.training import train_model
from shared.schemas.models import FeatureDistribution, ModelRef
from shared.schemas.records import CanonicalRecord, Demographics
from shared.tasks import load_tasks
from tests.support.factories.heart import heart_dataset

THREE = ("thallium_normal", "major_vessels", "st_slope_upsloping")


@pytest.fixture(scope="module")
def task():
    return load_tasks()["heart_disease"]


@pytest.fixture(scope="module")
def pooled(task):
    """A real model from train's own trainer (a logistic, one point: a few seconds) with its card's distributions."""
    quick = task.model_copy(update={"model": task.model.model_copy(update={"family": "logistic", "trials": 1})})
    data = heart_dataset(quick, labelled_only=True)
    model = train_model(quick, data)
    test = split(data, quick.test_fraction, quick.model.seed, validation_fraction=0.0).test
    return model, test


def served(model) -> list[ServedModel]:
    return [ServedModel(ModelRef(task="heart_disease", site="pooled", version="v"), 1.0, 0.5, model.scorer.predict)]


def as_features(row: np.ndarray) -> list[float | None]:
    return [None if np.isnan(v) else float(v) for v in row]


def without(task, features, names):
    out = list(features)
    for name in names:
        for i in next(g for g in input_groups(task) if name in {s.name for s in g.specs}).indices:
            out[i] = None
    return out


def complete_rows(test) -> np.ndarray:
    return test.x[~np.isnan(test.x).any(axis=1)]


def test_a_record_missing_nothing_is_done_at_once(task, pooled) -> None:
    model, test = pooled
    features = as_features(complete_rows(test)[0])
    result = assess(task, features, served(model), "weighted_average", model.distributions)
    assert result.done and result.ranked == () and result.completions == 0
    assert result.reason == "the record has every input" and result.next_question is None
    assert result.probability == pytest.approx(float(model.scorer.predict(np.array([complete_rows(test)[0]]))[0]))
    assert result.risk_p10 == result.risk_p90 == result.probability


def test_an_input_whose_values_cross_the_threshold_ranks_above_one_that_cannot(task) -> None:
    """A logistic on two inputs: thallium (reversible defect) moves the risk across 0.5, age hardly moves it."""
    names = task.feature_names
    thallium = names.index("thallium_reversable_defect")
    age = names.index("age")

    def score(x: np.ndarray) -> np.ndarray:
        filled = np.nan_to_num(x, nan=0.0)
        return 1.0 / (1.0 + np.exp(-(-0.5 + 2.0 * filled[:, thallium] + 0.001 * (filled[:, age] - 50))))

    distributions = {
        "age": FeatureDistribution(kind="numeric", n=100, quantiles=[40, 44, 48, 50, 52, 54, 56, 58, 62, 66]),
        "thallium_normal": FeatureDistribution(kind="rate", n=100, rate=0.5),
        "thallium_fixed_defect": FeatureDistribution(kind="rate", n=100, rate=0.1),
        "thallium_reversable_defect": FeatureDistribution(kind="rate", n=100, rate=0.4),
    }
    features: list[float | None] = [0.0] * len(names)
    features = without(task, features, ["age", "thallium_normal"])
    calls = []

    def counted(x: np.ndarray) -> np.ndarray:
        calls.append(len(x))
        return score(x)

    model = ServedModel(ModelRef(task="heart_disease", site="pooled", version="v"), 1.0, 0.5, counted)
    result = assess(task, features, [model], "weighted_average", distributions)
    assert len(calls) == 1, "every row in one scorer call per model"
    assert calls[0] == 1 + 10 * 3 + 10 + 3  # now, the joint grid (10 ages x 3 thallium values), each input's values
    assert result.label == 0 and [r.question.input for r in result.ranked] == ["thallium_normal", "age"]
    top, second = result.ranked
    assert top.flip_share == pytest.approx(0.4) and second.flip_share == 0.0
    assert top.spread > second.spread
    assert result.flip_share == pytest.approx(0.4) and not result.done
    assert result.next_question == top.question
    assert result.risk_p10 < 0.5 < result.risk_p90

    # The stop rule: once thallium is known, nothing plausible about age changes the decision.
    answered = apply_answer(task, features, "thallium_normal", "thallium-scan:normal")
    after = assess(task, answered, [model], "weighted_average", distributions)
    assert after.done and after.flip_share == 0.0 and "no missing input could change the decision" in after.reason
    # The same numbers under a tolerance above the flip share: done before asking.
    assert assess(task, features, [model], "weighted_average", distributions, tolerance=0.5).done


def test_unknown_answers_are_never_asked_again_and_recorded_inputs_never_asked(task, pooled) -> None:
    model, test = pooled
    full = as_features(complete_rows(test)[0])
    features = without(task, full, THREE)
    present_inputs = {g.specs[0].name for g in input_groups(task)} - set(THREE)
    unknown: set[str] = set()
    for _ in range(4):
        result = assess(task, features, served(model), "logit_average", model.distributions, unknown=unknown)
        ranked = {r.question.input for r in result.ranked}
        assert not ranked & present_inputs, "an input the record has is never asked"
        assert not ranked & unknown
        if result.done:
            break
        unknown.add(result.ranked[0].question.input)
    assert result.done
    assert {g.specs[0].name for g in missing_inputs(task, features)} == set(THREE)


def test_the_fused_risk_replays_fuses_formula_over_several_models(task, pooled) -> None:
    from services.fuse.fusion import Vote, combine

    model, test = pooled
    row = complete_rows(test)[1]
    features = without(task, as_features(row), THREE)
    half = ServedModel(ModelRef(task="heart_disease", site="x", version="v"), 0.3, 0.4, lambda x: np.full(len(x), 0.2))
    models = [*served(model), half]
    for method in ("weighted_average", "logit_average", "majority_vote"):
        result = assess(task, features, models, method, model.distributions)
        x = np.array([[np.nan if v is None else v for v in features]], dtype=np.float32)
        expected = combine(method, [Vote(float(model.scorer.predict(x)[0]), 1.0, 0.5), Vote(0.2, 0.3, 0.4)])
        assert result.probability == pytest.approx(expected.probability, abs=1e-6)
        assert result.label == expected.label


def test_questions_in_english_and_chinese_with_their_options(task) -> None:
    catalogue = questions(task)
    assert len(catalogue) == 13 and all(q.text["en"] and q.text["zh"] for q in catalogue)
    thallium = question(task, "thallium_reversable_defect")
    assert thallium.input == "thallium_normal" and thallium.kind == "category"
    assert thallium.text == {"en": "What did the thallium stress scan show?", "zh": "铊负荷心肌显像显示什么结果？"}
    assert [o.value for o in thallium.options] == [
        "thallium-scan:normal",
        "thallium-scan:fixed defect",
        "thallium-scan:reversable defect",
        "unknown",
    ]
    assert thallium.options[2].text == {"en": "reversible defect", "zh": "可逆性缺损"}
    assert thallium.options[-1].text == {"en": "unknown / don't know", "zh": "不知道"}
    angina = question(task, "exercise_angina")
    assert [o.value for o in angina.options] == ["yes", "no", "unknown"] and angina.options[0].text["zh"] == "是"
    bp = question(task, "resting_systolic_bp")
    assert bp.kind == "numeric" and bp.unit == "mmHg" and bp.range == (60, 260)
    assert [o.value for o in bp.options] == ["unknown"]
    sex = question(task, "sex_male")
    assert [o.value for o in sex.options] == ["male", "female", "unknown"]


def test_an_input_without_a_question_gets_one_from_its_label_and_unit(task) -> None:
    bare = task.model_copy(
        update={"features": [f.model_copy(update={"question": None, "option": None}) for f in task.features]}
    )
    bp = question(bare, "resting_systolic_bp")
    assert bp.text == {
        "en": "What is the patient's resting systolic BP (in mmHg)?",
        "zh": "患者的Resting systolic BP是多少（单位：mmHg）？",
    }
    assert question(bare, "thallium_normal").options[2].text == {"en": "reversable defect", "zh": "reversable defect"}


ANSWERS = [
    ("thallium_normal", "thallium-scan:reversable defect"),
    ("st_slope_upsloping", "st-slope:flat"),
    ("major_vessels", 2),
    ("exercise_angina", "yes"),
    ("exercise_angina", "no"),
    ("fasting_glucose_high", False),
    ("cholesterol", 241.0),
]


@pytest.mark.parametrize(("input_name", "answer"), ANSWERS)
def test_an_answer_as_an_observation_makes_clean_compute_the_answered_value(task, input_name, answer) -> None:
    observation = answer_observation(task, input_name, answer, datetime(2026, 12, 1, tzinfo=UTC))
    assert observation is not None
    record = CanonicalRecord(
        record_id="r",
        patient="p",
        hospital="cleveland",
        received_at=datetime(2026, 12, 1, tzinfo=UTC),
        source_format="json",
        demographics=Demographics(age_years=60, sex="male"),
        observations=[observation],
    )
    tasks = {"heart_disease": task.model_copy(update={"label": task.label})}
    cleaner = Cleaner(tasks, CodeBook([CodeTable(hospital="*", version=1)]))
    # One observation alone does not make the task apply; clean's feature code is what matters here.
    from services.clean.features import task_features

    clean_record = cleaner.clean(record).record
    values = task_features(clean_record, task).features.values
    for index, value in answer_update(task, input_name, answer).items():
        assert values[index] == value, (input_name, answer, index)


def test_unknown_and_demographics_make_no_observation_and_bad_answers_are_refused(task) -> None:
    assert answer_observation(task, "thallium_normal", "unknown") is None
    assert answer_observation(task, "age", 61) is None
    assert apply_answer(task, [None] * len(task.features), "major_vessels", None) == [None] * len(task.features)
    with pytest.raises(ValueError):
        answer_update(task, "major_vessels", 7)
    with pytest.raises(ValueError):
        answer_update(task, "thallium_normal", "thallium-scan:purple")


def test_distributions_come_from_the_pooled_model_else_the_heaviest() -> None:
    a, b, p = ({"x": FeatureDistribution(kind="rate", n=10, rate=r)} for r in (0.1, 0.2, 0.3))
    ref = lambda site: ModelRef(task="t", site=site, version="v")  # noqa: E731
    assert distribution_source([(ref("a"), 0.2, a), (ref("b"), 0.5, b)]) is b
    assert distribution_source([(ref("a"), 0.2, a), (ref("pooled"), 0.1, p), (ref("b"), 0.7, b)]) is p
