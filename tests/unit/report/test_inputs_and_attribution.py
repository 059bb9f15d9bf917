"""Inputs as a person reads them, and occlusion attribution against known and real models."""

from __future__ import annotations

import numpy as np
import pytest

from services.report.adapters.registry_models import RegistryModels
from services.report.attribution import explanation_candidates, occlusion, occlusions
from services.report.inputs import input_groups, value_text
from shared.schemas.models import ModelRef
from shared.schemas.predictions import Contribution
from shared.settings import Settings
from tests.support.factories.report import TASK, VERSION, heart_records, heart_task, record_from


def test_one_hot_features_of_one_code_form_one_input() -> None:
    groups = {g.label: g for g in input_groups(heart_task())}
    assert len(groups["Chest pain type"].indices) == 4
    assert groups["Chest pain type"].kind == "category"
    assert groups["Sex"].kind == "flag" and groups["Age"].kind == "numeric"
    assert sum(len(g.indices) for g in groups.values()) == len(heart_task().features)


def test_values_read_as_recorded() -> None:
    record = record_from("cleveland", 0)
    texts = {g.label: value_text(g, record.features) for g in input_groups(heart_task())}
    assert texts["Age"] == f"{record.raw['age_years']} years"
    assert texts["Sex"] == ("male" if record.raw["sex"] == "male" else "not male")
    assert texts["Resting systolic BP"].endswith(" mmHg")
    assert texts["Chest pain type"] in {"typical angina", "atypical angina", "non-anginal", "asymptomatic"}


def test_missing_inputs_read_as_not_measured() -> None:
    swiss = record_from("switzerland", 5)  # cholesterol recorded as 0: implausible, so missing
    groups = {g.label: g for g in input_groups(heart_task())}
    assert value_text(groups["Cholesterol"], swiss.features) is None


def test_occlusion_of_a_linear_model_recovers_its_terms() -> None:
    """For p = 0.1 + 0.2 a + 0.3 b with NaN imputed as 0, occluding a input removes exactly its term."""
    groups = input_groups(heart_task())
    features: list[float | None] = [None] * len(heart_task().features)
    features[0], features[6] = 1.0, 0.5  # age, resting BP
    weights = np.zeros(len(features))
    weights[0], weights[6] = 0.2, 0.3
    calls = []

    def score(x: np.ndarray) -> np.ndarray:
        calls.append(len(x))
        return 0.1 + np.nan_to_num(x) @ weights

    result = occlusion(score, features, groups)
    assert calls == [3]  # one batch: the record and each measured input occluded
    assert result.probability == pytest.approx(0.1 + 0.2 + 0.15)
    deltas = {i.label: i.delta for i in result.influences}
    assert deltas == pytest.approx({"Age": 0.2, "Resting systolic BP": 0.15})
    assert result.influences[0].label == "Age"  # largest first
    assert "Cholesterol" in result.not_measured and "Age" not in result.not_measured


def test_occlusion_on_a_real_model_matches_its_own_prediction(registry_settings: Settings) -> None:
    record = record_from("cleveland", 3)
    ref = ModelRef(task=TASK, site="hungary", version=VERSION)
    score = RegistryModels(registry_settings).scorer(ref)
    assert score is not None
    result = occlusion(score, record.features, input_groups(heart_task()))
    x = np.array([[np.nan if v is None else v for v in record.features]], dtype=np.float32)
    assert result.probability == pytest.approx(float(score(x)[0]), abs=1e-6)
    occluded = x.copy()
    occluded[0, 0] = np.nan  # age alone, to its training median
    assert {i.label: i.delta for i in result.influences}["Age"] == pytest.approx(
        result.probability - float(score(occluded)[0]), abs=1e-6
    )
    assert any(abs(i.delta) > 0.01 for i in result.influences)  # a trained model depends on its inputs


def test_occlusions_of_many_records_in_one_call_equal_each_alone(registry_settings: Settings) -> None:
    """Stacking every record's rows into one model call changes nothing: same influences, to the last bit."""
    groups = input_groups(heart_task())
    model = RegistryModels(registry_settings).scorer(ModelRef(task=TASK, site="cleveland", version=VERSION))
    assert model is not None
    calls = []

    def score(x: np.ndarray) -> np.ndarray:
        calls.append(len(x))
        return model(x)

    records = [r.features for r in heart_records()[::23]]  # all four hospitals, with and without gaps
    alone = [occlusion(model, features, groups) for features in records]
    together = occlusions(score, [(features, groups) for features in records])
    assert len(calls) == 1 and calls[0] == sum(1 + len(o.influences) for o in alone)
    assert together == alone
    assert occlusions(score, []) == []


def test_explained_model_is_pooled_first_then_heaviest() -> None:
    def c(site: str, weight: float) -> Contribution:
        return Contribution(model=ModelRef(task=TASK, site=site, version="v"), probability=0.5, weight=weight)

    assert [r.site for r in explanation_candidates([c("a", 0.2), c("b", 0.5), c("pooled", 0.3)])] == [
        "pooled",
        "b",
        "a",
    ]
    assert [r.site for r in explanation_candidates([c("a", 0.2), c("b", 0.8)])] == ["b", "a"]


def test_a_model_missing_from_the_registry_has_no_scorer(registry_settings: Settings) -> None:
    models = RegistryModels(registry_settings)
    assert models.scorer(ModelRef(task=TASK, site="nowhere", version="v1")) is None
    assert models.card(ModelRef(task=TASK, site="nowhere", version="v1")) is None
    assert models.card(ModelRef(task=TASK, site="hungary", version=VERSION)).metrics["auc"] > 0.6


def test_a_card_is_read_again_when_its_file_changes(fresh_settings: Settings) -> None:
    ref = ModelRef(task=TASK, site="fresh", version=VERSION)
    directory = fresh_settings.data_path / "registry-copy"
    models = RegistryModels(fresh_settings.model_copy(update={"data_dir": directory}))
    card_path = directory / "models" / TASK / "fresh" / VERSION / "card.json"
    card_path.parent.mkdir(parents=True)
    card = RegistryModels(fresh_settings).card(ModelRef(task=TASK, site="hungary", version=VERSION))
    assert card is not None
    card_path.write_text(card.model_copy(update={"site": "fresh"}).model_dump_json())
    assert models.card(ref) == models.card(ref) == card.model_copy(update={"site": "fresh"})
    retired = card.model_copy(update={"site": "fresh", "status": "retired", "metrics": {"auc": 0.51}})
    replacement = card_path.with_suffix(".tmp")
    replacement.write_text(retired.model_dump_json(indent=2))
    replacement.replace(card_path)  # as train writes a card: whole, then renamed over the old one
    assert models.card(ref) == retired
    card_path.unlink()
    assert models.card(ref) is None
