from __future__ import annotations

import math

import numpy as np
import orjson
import pytest

from services.infer.scoring import (
    ScoringInput,
    column_order,
    model_matrix,
    prediction,
    rows_by_task,
)
from shared.errors import RejectedInput, parse_event
from shared.schemas.predictions import Prediction
from tests.support.factories.infer import FEATURES, clean_record
from tests.support.models import write_model


def read(value: bytes) -> ScoringInput:
    return parse_event(value, ScoringInput, "t")


def test_a_record_reads_with_its_features_and_flags() -> None:
    record = read(clean_record(1).model_dump_json().encode())
    assert record.features["heart"].values == [63.0, None, 150.0]
    assert record.quality_flags[0].field == "cholesterol"


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"{not json", "not valid JSON"),
        (b'{"record_id": "r"}', "patient"),
        (
            orjson.dumps(
                {
                    "record_id": "r",
                    "patient": "p",
                    "hospital": "h",
                    "features": {"heart": {"names": ["a", "b"], "values": [1.0]}},
                }
            ),
            "features.heart: Value error, 2 names but 1 values",
        ),
        (
            b'{"record_id": "r", "patient": "p", "hospital": "h", '
            b'"features": {"heart": {"names": ["a"], "values": [1e400]}}}',
            "features.heart.values[0]: Input should be a finite number",
        ),
    ],
)
def test_bad_records_are_rejected_with_a_reason_naming_the_field(value: bytes, reason: str) -> None:
    with pytest.raises(RejectedInput) as rejected:
        read(value)
    assert reason in rejected.value.reason


def test_records_without_features_add_no_rows() -> None:
    with_features = read(clean_record(1).model_dump_json().encode())
    without = read(clean_record(2).model_copy(update={"features": {}}).model_dump_json().encode())
    tasks = rows_by_task([(0, "a", with_features), (1, "b", without)])
    assert list(tasks) == ["heart"]
    assert [s.position for s in tasks["heart"].records] == [0]


def test_missing_values_become_nan_and_columns_follow_the_model(settings) -> None:
    card, _ = write_model(settings, "heart", "pooled", ["max_heart_rate", "age", "not_in_record"])
    rows = rows_by_task([(0, "a", read(clean_record(1).model_dump_json().encode()))])["heart"]
    matrix = model_matrix(rows, card)
    assert matrix.dtype == np.float32
    assert matrix[0, 0] == 150.0 and matrix[0, 1] == 63.0 and math.isnan(matrix[0, 2])
    same_order, _ = write_model(settings, "heart", "other", FEATURES)
    assert column_order(tuple(FEATURES), same_order.features) is None
    assert math.isnan(model_matrix(rows, same_order)[0, 1])


def test_a_prediction_is_the_schema_s_with_the_label_at_the_model_s_threshold(settings) -> None:
    card, _ = write_model(settings, "heart", "pooled", FEATURES, threshold=0.4)
    record = read(clean_record(1).model_dump_json().encode())
    scored = rows_by_task([(0, "ce-1", record)])["heart"].records[0]
    made = prediction(scored, "heart", card, card.ref, 0.45, False, 1.25)
    assert Prediction.model_validate_json(made.model_dump_json()) == made
    assert made.label == 1 and made.model == card.ref and made.features == [63.0, None, 150.0]
    assert made.quality_flags == record.quality_flags and made.latency_ms == 1.25
    assert prediction(scored, "heart", card, card.ref, 1.0000001, True, 0.0).probability == 1.0  # float noise clipped
