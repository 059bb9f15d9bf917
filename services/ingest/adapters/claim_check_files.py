"""Adapter: pixel data under the data dir (the claim check a record's ``imaging[].uri`` points to)."""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from services.ingest.parsed import Attachment


class FileClaimChecks:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def _write(self, attachment: Attachment) -> None:
        target = attachment.path.resolve()
        if not target.is_relative_to(self.root):
            raise ValueError("claim check outside the data dir")
        target.parent.mkdir(parents=True, exist_ok=True)
        # Written aside and renamed: a reader never sees half a file, a redelivery rewrites the same bytes.
        with tempfile.NamedTemporaryFile(dir=target.parent, delete=False, suffix=".part") as handle:
            handle.write(attachment.content)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(handle.name, target)

    async def store(self, attachments: Sequence[Attachment]) -> None:
        """Every attachment on disk before the records that reference them are published."""
        for attachment in attachments:
            await asyncio.to_thread(self._write, attachment)
