from __future__ import annotations

import orjson
from aiokafka import ConsumerRecord

from services.infer.handlers import ScoreCleanBatch
from services.infer.metrics import InferMetrics
from services.infer.scoring import ScoringInput
from shared.metrics import ServiceMetrics
from shared.schemas.predictions import Prediction
from tests.support.factories.infer import clean_record, loaded_catalog, raw, raw_record
from tests.support.fakes import MemoryPredictionCache, RecordingDeadLetters, RecordingSender, handled


def handler(settings, cache=None, metrics: ServiceMetrics | None = None):
    catalog, cards = loaded_catalog(settings)
    sender, dead, metrics = RecordingSender(), RecordingDeadLetters(), metrics or ServiceMetrics("infer")
    infer_metrics = InferMetrics(metrics.registry)
    scorer = ScoreCleanBatch(catalog, cache or MemoryPredictionCache(), sender, infer_metrics)

    async def score(records: list[ConsumerRecord]) -> None:
        await handled(scorer, records, ScoringInput, deadletters=dead, metrics=metrics)

    return score, cards, sender, dead, infer_metrics


def predictions(sender: RecordingSender) -> list[Prediction]:
    return [Prediction.model_validate_json(b.value) for b in sender.sent]


def counter(metrics: InferMetrics, result: str) -> float:
    return metrics.cache.labels(result)._value.get()


async def test_every_active_model_scores_every_record_in_one_send(settings) -> None:
    score, cards, sender, dead, _ = handler(settings)
    await score([raw_record(clean_record(n), offset=n) for n in range(5)])
    made = predictions(sender)
    assert sender.calls == 1 and not dead.letters
    assert len(made) == 10
    assert {(p.record_id, p.model.site) for p in made} == {(f"record-{n}", c.site) for n in range(5) for c in cards}
    assert all(0 <= p.probability <= 1 and not p.cache_hit for p in made)
    assert [b.key for b in sender.sent[:2]] == [b"patient-0", b"patient-0"]  # keyed by patient, in record order
    assert len({b.event_id for b in sender.sent}) == 10


async def test_a_repeated_feature_vector_is_a_cache_hit_with_the_same_probability(settings) -> None:
    cache = MemoryPredictionCache()
    score, _, sender, _, metrics = handler(settings, cache)
    await score([raw_record(clean_record(1))])
    first = {p.model.site: p.probability for p in predictions(sender)}
    sender.sent.clear()
    await score([raw_record(clean_record(2))])  # another patient, the same vector
    second = predictions(sender)
    assert all(p.cache_hit and p.latency_ms == 0 for p in second)
    assert {p.model.site: p.probability for p in second} == first
    assert counter(metrics, "hit") == 2 and counter(metrics, "miss") == 2
    assert cache.round_trips == 3  # MGET + SET, then MGET only: never one per record


async def test_cache_down_still_predicts_and_counts_errors(settings) -> None:
    cache = MemoryPredictionCache()
    cache.down = True
    score, _, sender, _, metrics = handler(settings, cache)
    await score([raw_record(clean_record(n), offset=n) for n in range(3)])
    assert len(predictions(sender)) == 6
    assert counter(metrics, "error") == 6


async def test_a_bad_record_is_dead_lettered_and_the_rest_of_the_batch_is_scored(settings) -> None:
    metrics = ServiceMetrics("infer")
    score, _, sender, dead, _ = handler(settings, metrics=metrics)
    without_features = clean_record(3).model_copy(update={"features": {}})
    other_task = clean_record(4, task="unknown_task")
    await score(
        [
            raw_record(clean_record(1)),
            raw(b"{oops", offset=1),
            raw_record(without_features, 2),
            raw_record(other_task, 3),
        ]
    )
    assert [letter.offset for letter in dead.letters] == [1]
    assert "not valid JSON" in dead.reasons[0]
    assert {p.record_id for p in predictions(sender)} == {"record-1"}
    skipped = {"service": "infer", "outcome": "skipped"}
    assert metrics.registry.get_sample_value("aimass_events_total", skipped) == 2


async def test_a_prediction_carries_what_fuse_and_report_need(settings) -> None:
    score, _, sender, _, _ = handler(settings)
    await score([raw_record(clean_record(7, values=(70.0, 250.0, None)))])
    body = orjson.loads(sender.sent[0].value)
    assert body["features"] == [70.0, 250.0, None]
    assert body["quality_flags"] == [{"kind": "missing", "field": "cholesterol", "detail": ""}]
    assert body["hospital"] == "cleveland" and body["latency_ms"] > 0
