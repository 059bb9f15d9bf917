"""infer's subscriber logic: score a batch of clean records, apply model cards. The batch is confirmed only after
every prediction (and dead letter) is acknowledged, so the commit that follows never skips an unpublished one."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from services.infer.batch import (
    ModelGroup,
    apply_cached,
    build_predictions,
    new_cache_entries,
    plan_groups,
)
from services.infer.catalog import ModelCatalog, desired_card
from services.infer.metrics import InferMetrics
from services.infer.ports import Cache, Loader, Registry, Scorer, Sender
from services.infer.scoring import ScoringInput, rows_by_task
from shared.errors import RejectedInput
from shared.intake import Batch
from shared.schemas.models import ModelCard

log = logging.getLogger("aimass.infer")


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


@dataclass
class ScoreCleanBatch:
    catalog: ModelCatalog[Scorer]
    cache: Cache
    sender: Sender
    metrics: InferMetrics

    async def __call__(self, batch: Batch[ScoringInput]) -> None:
        self.metrics.batch_size.observe(len(batch))
        accepted = [(position, item.event_id, item.event) for position, item in enumerate(batch)]
        groups = plan_groups(rows_by_task(accepted), self.catalog.snapshot())
        await self._score(groups)
        built = build_predictions(groups)
        await self.sender.send_all(built)
        self._count(batch, groups)

    async def _score(self, groups: list[ModelGroup[Scorer]]) -> None:
        answers = await self.cache.get_many([group.keys for group in groups])
        if answers is None and self.cache.enabled:
            self.metrics.cache.labels("error").inc(sum(len(group.keys) for group in groups))
        hits, misses = apply_cached(groups, answers)
        self.metrics.cache.labels("hit").inc(hits)
        self.metrics.cache.labels("miss").inc(misses)
        await asyncio.to_thread(score_misses, groups)
        for group in groups:
            if len(group.misses):
                self.metrics.latency.labels(group.rows.task).observe(group.seconds)
        if self.cache.available:
            await self.cache.put_many(new_cache_entries(groups))

    def _count(self, batch: Batch[ScoringInput], groups: Sequence[ModelGroup[Scorer]]) -> None:
        for group in groups:
            self.metrics.predictions.labels(group.model.card.task, group.model.card.site).inc(len(group.keys))
        scored = {scored.position for group in groups for scored in group.rows.records}
        batch.count("emitted", len(scored))
        # A record with no features, or only for tasks no model serves yet, yields nothing: counted, not an error.
        batch.count("skipped", len(batch) - len(scored))


@dataclass
class ApplyModelCard:
    """Hot reload: load the model a card calls for beside the one serving, then swap; retire removes it."""

    catalog: ModelCatalog[Scorer]
    loader: Loader
    registry: Registry
    metrics: InferMetrics

    async def __call__(self, batch: Batch[ModelCard]) -> None:
        """A card whose artifact cannot serve is dead-lettered; the model serving until now keeps serving."""
        for item in batch:
            try:
                await self.apply(item.event)
            except RejectedInput as rejected:
                await batch.reject(item.record, rejected)

    async def apply(self, card: ModelCard) -> None:
        current = self.catalog.current(card.task, card.site)
        registry = await asyncio.to_thread(self.registry.cards, card.task, card.site)
        target = desired_card(current, card, registry)
        if target is None:
            if current is not None:
                self.catalog.remove(card.task, card.site)
                self.metrics.unloaded(current)
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
            self.metrics.unloaded(replaced)
        self.metrics.loaded(card)
        log.info("model serving", extra={"task": card.task, "site": card.site, "version": card.version})
