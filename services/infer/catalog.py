"""Which model serves each (task, site), and the loaded models as one immutable snapshot (pure; no I/O).

One model per (task, site) is active at a time (train retires the others). A ``models.released`` card is a
notification: when the registry is readable here, its current state for that (task, site) decides, so replaying
old cards is harmless and a promotion (the retirement of one version, then the activation of another) switches
in one step. Without a readable registry the card itself decides, newest ``created_at`` first.

Hot reload: the new model is loaded beside the old, then ``ModelCatalog.put`` swaps in a new snapshot. A batch
holds the snapshot it started with, so it completes on the old model; the old one is freed when no batch holds it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Generic, TypeVar

from shared.schemas.models import ModelCard

ScorerT = TypeVar("ScorerT")


def newest_active(cards: Iterable[ModelCard]) -> ModelCard | None:
    active = [c for c in cards if c.status == "active"]
    return max(active, key=lambda c: c.created_at) if active else None


def desired_card(current: ModelCard | None, card: ModelCard, registry: list[ModelCard]) -> ModelCard | None:
    """The card that should serve ``card``'s (task, site) after seeing ``card``. ``registry``: every card of that
    (task, site) on disk (empty when the registry is not readable from here)."""
    if registry:
        return newest_active(registry)
    if card.status == "retired":
        return None if current is not None and current.version == card.version else current
    if card.status == "active" and (current is None or current.created_at <= card.created_at):
        return card
    return current


@dataclass(frozen=True, slots=True)
class LoadedModel(Generic[ScorerT]):
    card: ModelCard
    scorer: ScorerT


Snapshot = Mapping[str, tuple[LoadedModel[ScorerT], ...]]


class ModelCatalog(Generic[ScorerT]):
    """The loaded models per task. Readers take ``snapshot()`` once per batch; writers replace it whole."""

    def __init__(self) -> None:
        self._by_site: dict[tuple[str, str], LoadedModel[ScorerT]] = {}
        self._snapshot: Snapshot[ScorerT] = MappingProxyType({})

    def snapshot(self) -> Snapshot[ScorerT]:
        return self._snapshot

    def current(self, task: str, site: str) -> ModelCard | None:
        loaded = self._by_site.get((task, site))
        return loaded.card if loaded else None

    def put(self, card: ModelCard, scorer: ScorerT) -> ModelCard | None:
        """Serve ``scorer`` for ``card``'s (task, site); returns the card it replaced."""
        previous = self.current(card.task, card.site)
        self._by_site[(card.task, card.site)] = LoadedModel(card, scorer)
        self._publish()
        return previous

    def remove(self, task: str, site: str) -> ModelCard | None:
        loaded = self._by_site.pop((task, site), None)
        self._publish()
        return loaded.card if loaded else None

    def cards(self) -> list[ModelCard]:
        return sorted((m.card for m in self._by_site.values()), key=lambda c: (c.task, c.site))

    def summary(self) -> dict[str, list[str]]:
        return {task: [f"{m.card.site}/{m.card.version}" for m in models] for task, models in self._snapshot.items()}

    def _publish(self) -> None:
        tasks: dict[str, list[LoadedModel[ScorerT]]] = {}
        for (task, _), loaded in sorted(self._by_site.items()):
            tasks.setdefault(task, []).append(loaded)
        self._snapshot = MappingProxyType({task: tuple(models) for task, models in tasks.items()})
