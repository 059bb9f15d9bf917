"""What infer's service layer needs from outside: models that score, the prediction cache, a producer for pre-encoded
events, the registry and a loader of its artifacts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from shared.schemas.models import ModelCard


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
