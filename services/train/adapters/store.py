"""The training store: ``records.clean`` materialized as Parquet, one partition per task and hospital.

Layout under ``<data dir>/train-store``::

    task=<task>/hospital=<hospital>/data.parquet   the compacted rows: exactly one row per record_id
    task=<task>/hospital=<hospital>/inbox.jsonl    rows received since the last compaction (appended, fsynced)

Columns: ``_record_id``, ``_patient`` (pseudonym), ``_received_at``, ``_label`` (null when unlabelled) and one
float column per feature, named as the task file names it (null = missing). A record is appended to the inbox
before its Kafka offset is committed (at least once); a record id already in the inbox is not appended again, and
compaction (``compact``) folds the inbox into ``data.parquet`` keeping the first copy of every record id, then
removes the inbox. A crash between the two steps leaves rows that the next compaction de-duplicates.

Only the inbox's ids are held in memory, not the whole store's (a set of every id ever stored grew by hundreds of
MB a day at a million records): a re-delivered record whose first copy was already compacted is appended once more
and dropped by the next compaction, which ``append`` runs whenever an inbox reaches ``COMPACT_AFTER_ROWS``.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import quote, unquote

import pandas as pd
import pyarrow.parquet as pq

from services.train.dataset import Dataset, Row, assemble
from services.train.ports import Appended, StoredRecord
from shared.files import write_atomically

STORE_FOLDER = "train-store"
"""The store's folder under the data dir."""
DATA_FILE = "data.parquet"
INBOX_FILE = "inbox.jsonl"
META = ("_record_id", "_patient", "_received_at", "_label")
COMPACT_AFTER_ROWS = 10_000
"""An inbox this long is folded into ``data.parquet``: bounds the inbox file and the ids held in memory."""


class ParquetTrainingStore:
    """The ``TrainingStore`` of ``services/train/ports.py``, and the synchronous reads training runs on.

    The asynchronous ``append`` and ``compacted`` share one lock: compaction reads an inbox and then removes it, so a
    row appended in between would be lost. Compaction runs in a thread (seconds of Parquet on a long inbox), and
    records arriving meanwhile wait for it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._inbox_ids: dict[Path, set[str]] = {}
        self._lock = asyncio.Lock()

    async def append(self, task: str, record: StoredRecord) -> Appended:
        async with self._lock:
            if not self.add(task, record):
                return Appended.DUPLICATE
            if self.inbox_rows(task, record.hospital) < COMPACT_AFTER_ROWS:
                return Appended.ADDED
            await asyncio.to_thread(self.compact, task, record.hospital)
            return Appended.COMPACTED

    async def compacted(self, task: str) -> None:
        async with self._lock:
            await asyncio.to_thread(self.compact, task)

    def partition(self, task: str, hospital: str) -> Path:
        return self.root / f"task={task}" / f"hospital={quote(hospital, safe='')}"

    def _ids(self, partition: Path) -> set[str]:
        """The record ids in the partition's inbox."""
        if partition not in self._inbox_ids:
            inbox = partition / INBOX_FILE
            lines = _inbox_lines(inbox) if inbox.exists() else []
            self._inbox_ids[partition] = {str(line["_record_id"]) for line in lines}
        return self._inbox_ids[partition]

    def inbox_rows(self, task: str, hospital: str) -> int:
        return len(self._ids(self.partition(task, hospital)))

    def add(self, task: str, record: StoredRecord) -> bool:
        """Append ``record`` unless its id is in the inbox already; ``False`` for a duplicate."""
        partition = self.partition(task, record.hospital)
        ids = self._ids(partition)
        if record.record_id in ids:
            return False
        row = {
            "_record_id": record.record_id,
            "_patient": record.patient,
            "_received_at": record.received_at,
            "_label": record.label,
            **dict(zip(record.feature_names, record.values, strict=True)),
        }
        partition.mkdir(parents=True, exist_ok=True)
        with (partition / INBOX_FILE).open("a", encoding="utf-8") as inbox:
            inbox.write(json.dumps(row, separators=(",", ":")) + "\n")
            inbox.flush()
            os.fsync(inbox.fileno())
        ids.add(record.record_id)
        return True

    def partitions(self, task: str | None = None) -> list[tuple[str, str, Path]]:
        pattern = f"task={task}/hospital=*" if task else "task=*/hospital=*"
        return [
            (p.parent.name.removeprefix("task="), unquote(p.name.removeprefix("hospital=")), p)
            for p in sorted(self.root.glob(pattern))
            if p.is_dir()
        ]

    def compact(self, task: str | None = None, hospital: str | None = None) -> None:
        """Fold the inboxes of ``task`` (every task when ``None``), of one hospital's partition when it is given."""
        partitions = [self.partition(task, hospital)] if task and hospital else [p for *_, p in self.partitions(task)]
        for partition in partitions:
            inbox = partition / INBOX_FILE
            if not inbox.exists():
                continue
            frames = [pd.DataFrame(_inbox_lines(inbox))]
            if (partition / DATA_FILE).exists():
                frames.insert(0, pd.read_parquet(partition / DATA_FILE))
            merged = pd.concat(frames, ignore_index=True).drop_duplicates("_record_id", keep="first")
            for column in merged.columns:
                if column not in META[:3]:
                    merged[column] = pd.to_numeric(merged[column], errors="coerce").astype("float64")
            write_atomically(partition / DATA_FILE, merged.to_parquet(index=False, engine="pyarrow"))
            inbox.unlink()
            self._inbox_ids[partition] = set()

    def frame(self, task: str, hospital: str) -> pd.DataFrame:
        partition = self.partition(task, hospital)
        frames = []
        if (partition / DATA_FILE).exists():
            frames.append(pd.read_parquet(partition / DATA_FILE))
        if (partition / INBOX_FILE).exists():
            frames.append(pd.DataFrame(_inbox_lines(partition / INBOX_FILE)))
        if not frames:
            return pd.DataFrame(columns=list(META))
        return pd.concat(frames, ignore_index=True).drop_duplicates("_record_id", keep="first")

    def counts(self) -> dict[tuple[str, str], int]:
        return {(task, hospital): self.rows(task, hospital) for task, hospital, _ in self.partitions()}

    def rows(self, task: str, hospital: str) -> int:
        """Records in one partition: exact after a compaction; a re-delivered record still in the inbox counts
        twice until then."""
        partition = self.partition(task, hospital)
        data = partition / DATA_FILE
        return (pq.read_metadata(data).num_rows if data.exists() else 0) + len(self._ids(partition))

    def dataset(self, task: str, feature_names: Sequence[str]) -> Dataset:
        """The task's labelled rows, columns in ``feature_names`` order (a column the store lacks is missing)."""
        rows = []
        for _, hospital, _ in self.partitions(task):
            frame = self.frame(task, hospital)
            frame = frame[frame["_label"].notna()]
            values = frame.reindex(columns=list(feature_names)).astype("float64").to_numpy()
            for record_id, label, vector in zip(frame["_record_id"], frame["_label"], values, strict=True):
                rows.append(Row(record_id, hospital, [None if v != v else float(v) for v in vector], float(label)))
        return assemble(feature_names, rows)


def _inbox_lines(path: Path) -> list[dict[str, object]]:
    lines = []
    for text in path.read_text(encoding="utf-8").splitlines():
        try:
            lines.append(json.loads(text))
        except json.JSONDecodeError:  # a line torn by a crash mid-write: its record is re-delivered uncommitted
            continue
    return lines
