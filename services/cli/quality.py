"""``aimass quality``: per-hospital data quality, read back from ``records.clean``.

For each task, the share of records whose feature is missing (implausible values count: clean made them missing),
by hospital; then the quality flags by kind and hospital. Reads the topic from the start to its end at the moment
the command starts; a record delivered twice counts once (by record id).
"""

from __future__ import annotations

import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaConnectionError
from pydantic import ValidationError

from services.cli.kafka import kafka_unreachable
from shared.schemas import CleanRecord
from shared.security import kafka_client_options
from shared.settings import Settings
from shared.topics import Topic, topic_name

FLAG_KINDS = ("missing", "implausible", "unknown_unit", "incompatible_unit", "unmapped_code")


@dataclass
class TaskQuality:
    names: list[str]
    records: Counter[str] = field(default_factory=Counter)  # hospital -> records with this task's features
    missing: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))  # hospital -> feature


@dataclass
class QualitySummary:
    records: Counter[str] = field(default_factory=Counter)
    tasks: dict[str, TaskQuality] = field(default_factory=dict)
    flags: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))  # hospital -> kind
    unreadable: int = 0


def summarize(records: Iterable[CleanRecord]) -> QualitySummary:
    summary = QualitySummary()
    for record in {r.record_id: r for r in records}.values():
        summary.records[record.hospital] += 1
        summary.flags[record.hospital].update(flag.kind for flag in record.quality_flags)
        for name, features in record.features.items():
            task = summary.tasks.setdefault(name, TaskQuality(list(features.names)))
            task.records[record.hospital] += 1
            task.missing[record.hospital].update(
                n for n, v in zip(features.names, features.values, strict=True) if v is None
            )
    return summary


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(row: list[str]) -> str:  # names left-aligned, numbers right-aligned
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True)))

    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, rows)])


def render(summary: QualitySummary, only_task: str | None = None) -> str:
    if not summary.records:
        return "records.clean holds no records yet: publish some (aimass simulate) and run clean."
    hospitals = sorted(summary.records)
    total = sum(summary.records.values())
    parts = [
        f"records.clean: {total} records from {len(hospitals)} hospitals"
        + (f" ({summary.unreadable} unreadable values skipped)" if summary.unreadable else "")
    ]
    for name, task in sorted(summary.tasks.items()):
        if only_task and name != only_task:
            continue
        present = [h for h in hospitals if task.records[h]]
        rows = [["records", *(str(task.records[h]) for h in present)]]
        for feature in task.names:
            rows.append([feature, *(f"{100 * task.missing[h][feature] / task.records[h]:.1f}%" for h in present)])
        parts.append(
            f"{name}: % of records missing each feature (implausible values count as missing)\n"
            + _table(["feature", *present], rows)
        )
    if not summary.tasks:
        parts.append("no record carries task features (records cleaned by an older clean, or none fit a task)")
    rows = [[kind, *(str(summary.flags[h][kind]) for h in hospitals)] for kind in FLAG_KINDS]
    parts.append("quality flags by kind (count over all records)\n" + _table(["flag", *hospitals], rows))
    return "\n\n".join(parts) + "\n"


async def read_clean_records(settings: Settings, idle_seconds: float) -> tuple[list[CleanRecord], int]:
    """Every record on records.clean up to the end offsets seen at the start, and how many could not be read."""
    name = topic_name(Topic.RECORDS_CLEAN, settings.topic_prefix)
    client = AIOKafkaConsumer(
        name,
        **kafka_client_options(settings),
        group_id=None,
        client_id="aimass-cli",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await client.start()
    records: list[CleanRecord] = []
    unreadable = 0

    def keep(batches: dict[TopicPartition, list[ConsumerRecord]]) -> None:
        nonlocal unreadable
        for messages in batches.values():
            for message in messages:
                try:
                    records.append(CleanRecord.model_validate_json(message.value or b""))
                except ValidationError:
                    unreadable += 1

    try:
        deadline = time.monotonic() + idle_seconds
        while not client.assignment() and time.monotonic() < deadline:  # without a group: every partition
            keep(await client.getmany(timeout_ms=200))
        partitions = list(client.assignment())
        end = await client.end_offsets(partitions) if partitions else {}
        while await _behind(client, end) and time.monotonic() < deadline:
            batches = await client.getmany(timeout_ms=500)
            if batches:
                deadline = time.monotonic() + idle_seconds
            keep(batches)
        return records, unreadable
    finally:
        await client.stop()


async def _behind(client: AIOKafkaConsumer, end: dict[TopicPartition, int]) -> bool:
    return any([await client.position(partition) < offset for partition, offset in end.items()])


async def quality(settings: Settings, task: str | None, idle_seconds: float) -> int:
    try:
        records, unreadable = await read_clean_records(settings, idle_seconds)
    except KafkaConnectionError:
        print(kafka_unreachable(settings), file=sys.stderr)
        return 1
    summary = summarize(records)
    summary.unreadable = unreadable
    if task and task not in summary.tasks:
        print(f"aimass: no record on records.clean has features for task {task!r}", file=sys.stderr)
        return 2
    print(render(summary, task), end="")
    return 0
