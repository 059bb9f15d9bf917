"""Which models a task's fusion waits for, and every card seen, for weights (pure: fed cards, holds no I/O).

One model per (task, site) is active at a time (train retires the others). The directory keeps, per task and
site, the newest active card; a ``retired`` card for that very version removes it. Cards may arrive out of order
(the registry read at start, then ``models.released`` replayed from its beginning), so an older active card never
replaces a newer one unless the newer one was retired first (a promotion back: train publishes the retirement,
then the promoted card). Replayed in order, the cards end in the registry's state.
"""

from __future__ import annotations

from collections.abc import Iterable

from shared.schemas.models import ModelCard, ModelRef


def ref_text(ref: ModelRef) -> str:
    return f"{ref.task}/{ref.site}/{ref.version}"


class ModelDirectory:
    def __init__(self, cards: Iterable[ModelCard] = ()) -> None:
        self._active: dict[str, dict[str, ModelCard]] = {}
        self._cards: dict[ModelRef, ModelCard] = {}
        for card in cards:
            self.apply(card)

    def apply(self, card: ModelCard) -> None:
        """Take a card into account: changes at most its own site's entry."""
        ref = card.ref
        self._cards[ref] = card
        sites = self._active.setdefault(card.task, {})
        current = sites.get(card.site)
        if card.status == "retired":
            if current is not None and current.version == card.version:
                del sites[card.site]
        elif card.status == "active" and (current is None or current.created_at <= card.created_at):
            sites[card.site] = card

    def expected(self, task: str) -> dict[str, ModelCard]:
        """The active card of each site of ``task``."""
        return dict(self._active.get(task, {}))

    def card(self, ref: ModelRef) -> ModelCard | None:
        """The card of exactly this model, else the active card of its site (a prediction made just before a
        release was seen here)."""
        return self._cards.get(ref) or self._active.get(ref.task, {}).get(ref.site)

    def summary(self) -> dict[str, list[str]]:
        return {task: sorted(ref_text(c.ref) for c in sites.values()) for task, sites in self._active.items()}
