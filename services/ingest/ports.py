"""What ingest's service layer needs from outside: a place for pixel data, and the reader of a document."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from services.ingest.documents import Ingested
from services.ingest.parsed import Attachment
from services.ingest.records import Envelope

DocumentReader = Callable[[bytes, Mapping[str, str], Envelope], Ingested]
"""``services.ingest.documents.read_document`` with the deployment's key, limits and tables bound."""


class ClaimChecks(Protocol):
    async def store(self, attachments: Sequence[Attachment]) -> None:
        """Every attachment stored before the records that reference them are published."""
        ...
