"""infer's subscriber logic: score a batch of clean records, apply a model card. The batch returns only after
every prediction (and dead letter) is acknowledged, so the commit that follows never skips an unpublished one."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Sequence
from typing import Protocol

import numpy as np
from aiokafka import ConsumerRecord

from services.infer.batch import (
    ModelGroup,
    apply_cached,
    build_predictions,
    new_cache_entries,
    plan_groups,
)
from services.infer.catalog import ModelCatalog, desired_card
from services.infer.metrics import InferMetrics
from services.infer.scoring import ScoringInput, read_record, rows_by_task
from shared.errors import RejectedInput
from shared.events import DeadLetters, confirmed
from shared.metrics import ServiceMetrics
from shared.schemas.models import ModelCard
from shared.topics import event_id_of

log = logging.getLogger("aimass.infer")


class Scorer(Protocol):
    def score(self, features: np.ndarray) -> object: ...


class Cache(Protocol):
    @property
    def enabled(self) -> bool: ...
    @property
    def available(self) -> bool: ...
    async def get_many(self, groups: Sequence[Sequence[str]]) -> list[list[bytes | None]] | None: ...
    async def put_many(self, groups: Sequence[Sequence[tuple[str, bytes]]]) -> bool: ...


class Sender(Protocol):
    async def send_all(self, events: Sequence[object]) -> None: ...


class Loader(Protocol):
    def load(self, card: ModelCard) -> Scorer: ...


class Registry(Protocol):
    def cards(self, task: str, site: str) -> list[ModelCard]: ...


def score_misses(groups: Sequence[ModelGroup[Scorer]]) -> None:
    """Runs in a worker thread: one onnxruntime call per model, for the rows the cache did not answer."""
    for group in groups:
        misses = group.misses
        if len(misses) == 0:
            continue
        features = group.features if len(misses) == len(group.keys) else group.features[misses]
        result = group.model.scorer.score(features)
        group.probabilities[misses] = result.probabilities  # type: ignore[attr-defined]
        group.seconds = result.seconds  # type: ignore[attr-defined]


class ScoreCleanBatch:
    def __init__(
        self,
        catalog: ModelCatalog[Scorer],
        cache: Cache,
        sender: Sender,
        deadletters: DeadLetters,
        metrics: ServiceMetrics,
        infer_metrics: InferMetrics,
    ) -> None:
        self.catalog = catalog
        self.cache = cache
        self.sender = sender
        self.deadletters = deadletters
        self.metrics = metrics
        self.infer_metrics = infer_metrics

    async def __call__(self, records: Sequence[ConsumerRecord]) -> None:
        self.infer_metrics.batch_size.observe(len(records))
        accepted: list[tuple[int, str, ScoringInput]] = []
        dead: list[Awaitable[object] | None] = []
        for position, raw in enumerate(records):
            try:
                accepted.append((position, event_id_of(raw), read_record(raw.value, raw.topic)))
            except RejectedInput as rejected:
                dead.append(await self.deadletters.enqueue(raw, rejected.reason, rejected.reason_class))
        self.metrics.counted("received", len(accepted))
        groups = plan_groups(rows_by_task(accepted), self.catalog.snapshot())
        await self._score(groups)
        built = build_predictions(groups)
        await self.sender.send_all(built)
        await confirmed(dead)
        self._count(accepted, groups, built)

    async def _score(self, groups: list[ModelGroup[Scorer]]) -> None:
        answers = await self.cache.get_many([group.keys for group in groups])
        if answers is None and self.cache.enabled:
            self.infer_metrics.cache.labels("error").inc(sum(len(group.keys) for group in groups))
        hits, misses = apply_cached(groups, answers)
        self.infer_metrics.cache.labels("hit").inc(hits)
        self.infer_metrics.cache.labels("miss").inc(misses)
        await asyncio.to_thread(score_misses, groups)
        for group in groups:
            if len(group.misses):
                self.infer_metrics.latency.labels(group.rows.task).observe(group.seconds)
        if self.cache.available:
            await self.cache.put_many(new_cache_entries(groups))

    def _count(
        self,
        accepted: Sequence[tuple[int, str, ScoringInput]],
        groups: Sequence[ModelGroup[Scorer]],
        built: Sequence[object],
    ) -> None:
        for group in groups:
            self.infer_metrics.predictions.labels(group.model.card.task, group.model.card.site).inc(len(group.keys))
        scored = {scored.position for group in groups for scored in group.rows.records}
        self.metrics.counted("emitted", len(scored))
        # A record with no features, or only for tasks no model serves yet, yields nothing: counted, not an error.
        self.metrics.counted("skipped", len(accepted) - len(scored))


class ApplyModelCard:
    """Hot reload: load the model a card calls for beside the one serving, then swap; retire removes it."""

    def __init__(
        self, catalog: ModelCatalog[Scorer], loader: Loader, registry: Registry, infer_metrics: InferMetrics
    ) -> None:
        self.catalog = catalog
        self.loader = loader
        self.registry = registry
        self.infer_metrics = infer_metrics

    async def __call__(self, card: ModelCard) -> None:
        current = self.catalog.current(card.task, card.site)
        registry = await asyncio.to_thread(self.registry.cards, card.task, card.site)
        target = desired_card(current, card, registry)
        if target is None:
            if current is not None:
                self.catalog.remove(card.task, card.site)
                self.infer_metrics.unloaded(current)
                log.info("model retired", extra={"task": card.task, "site": card.site, "version": current.version})
            return
        if current is not None and current.version == target.version:
            return
        await self.load(target)

    async def load(self, card: ModelCard) -> None:
        """``RejectedInput`` when the artifact cannot serve; the model serving until now keeps serving."""
        scorer = await asyncio.to_thread(self.loader.load, card)
        replaced = self.catalog.put(card, scorer)
        if replaced is not None and replaced.version != card.version:
            self.infer_metrics.unloaded(replaced)
        self.infer_metrics.loaded(card)
        log.info("model serving", extra={"task": card.task, "site": card.site, "version": card.version})
