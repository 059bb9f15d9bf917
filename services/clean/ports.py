"""What clean's service layer needs from outside: which events and contents it has already handled."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from services.clean.dedup import Candidate, Verdict


class SeenEvents(Protocol):
    async def judge(self, candidates: Sequence[Candidate]) -> list[Verdict]:
        """One verdict per candidate, in order; claims the content of the new ones."""
        ...

    async def remember(self, event_ids: Sequence[str]) -> None:
        """Called once the outputs of these events were acknowledged."""
        ...
