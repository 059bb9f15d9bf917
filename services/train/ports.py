"""What train's service layer needs from outside: the training store and the worker that trains in its own process."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Protocol

from shared.schemas.models import ModelCard


@dataclass(frozen=True)
class StoredRecord:
    """One clean record as the store keeps it for one task: its feature vector and label."""

    record_id: str
    patient: str
    hospital: str
    received_at: str
    feature_names: Sequence[str]
    values: Sequence[float | None]
    label: float | None


class Appended(Enum):
    DUPLICATE = "duplicate"  # the record's id was in the partition's inbox already: nothing written
    ADDED = "added"
    COMPACTED = "compacted"  # added, and the partition's inbox folded into its data file (its row count is exact)


class TrainingStore(Protocol):
    async def append(self, task: str, record: StoredRecord) -> Appended:
        """Store ``record`` durably before its offset is committed; compacts a partition whose inbox grew long."""
        ...

    async def compacted(self, task: str) -> None:
        """Fold every inbox of the task before it is read for training; a record arriving meanwhile waits."""
        ...

    def rows(self, task: str, hospital: str) -> int:
        """Records in one partition."""
        ...


class TrainingWorker(Protocol):
    async def train(self, task: str, site: str | None) -> list[ModelCard]:
        """The cards that changed: ``ParityError``, ``NotTrainable`` or ``TrainerDied`` when none could be released."""
        ...
