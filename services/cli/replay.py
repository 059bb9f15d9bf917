"""``aimass replay``: dead letters back to the topic they came from, once their cause is fixed.

Replay reads ``deadletter`` in its own consumer group and commits what it went through, so a dead letter is
replayed once; one that fails again comes back to ``deadletter`` with a fresh reason. Filters: the service that
dead-lettered it, text in its reason, the sending hospital, the original topic, and a time.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from datetime import UTC, datetime

from aiokafka.errors import KafkaConnectionError
from tqdm import tqdm

from services.cli.kafka import consumer, kafka_unreachable, producer
from shared.settings import Settings
from shared.topics import (
    CE_SOURCE,
    DLQ_ERROR,
    DLQ_HEADERS,
    DLQ_ORIGINAL_TOPIC,
    DLQ_SERVICE,
    Topic,
    decode_headers,
    topic_name,
)


@dataclass(frozen=True)
class Filters:
    service: str | None = None
    reason: str | None = None
    since: datetime | None = None
    hospital: str | None = None
    original_topic: str | None = None  # full name, with the prefix

    def wanted(self, headers: dict[str, str], timestamp_ms: int) -> bool:
        checks = (
            not self.service or headers.get(DLQ_SERVICE) == self.service,
            not self.reason or self.reason.lower() in headers.get(DLQ_ERROR, "").lower(),
            not self.since or timestamp_ms >= self.since.timestamp() * 1000,
            not self.hospital or headers.get(CE_SOURCE) == self.hospital,
            not self.original_topic or headers.get(DLQ_ORIGINAL_TOPIC) == self.original_topic,
        )
        return all(checks)


def wanted(
    headers: dict[str, str], timestamp_ms: int, service: str | None, reason: str | None, since: datetime | None
) -> bool:
    return Filters(service, reason, since).wanted(headers, timestamp_ms)


def parse_since(text: str | None) -> datetime | None:
    if not text:
        return None
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


async def replay(
    settings: Settings,
    service: str | None,
    reason: str | None,
    since: str | None,
    dry_run: bool,
    idle: float,
    *,
    hospital: str | None = None,
    topic: Topic | None = None,
) -> int:
    try:
        filters = Filters(
            service, reason, parse_since(since), hospital, topic_name(topic, settings.topic_prefix) if topic else None
        )
    except ValueError as error:
        print(f"aimass replay: {error}", file=sys.stderr)
        return 2
    source = consumer(
        settings, topic_name(Topic.DEADLETTER, settings.topic_prefix), group_id="aimass-replay", from_beginning=True
    )
    sink = producer(settings)
    try:
        await source.start()
        await sink.start()
    except KafkaConnectionError:
        print(kafka_unreachable(settings), file=sys.stderr)
        return 1
    replayed = skipped = failed = 0
    try:
        with tqdm(desc="dead letters", unit="msg", disable=None, file=sys.stderr) as bar:
            while True:
                batch = await source.getmany(timeout_ms=int(idle * 1000))
                if not batch:
                    break
                for records in batch.values():
                    for record in records:
                        bar.update()
                        headers = decode_headers(record.headers)
                        target = headers.get(DLQ_ORIGINAL_TOPIC)
                        if not target or not filters.wanted(headers, record.timestamp):
                            skipped += 1
                            continue
                        verb = "would replay" if dry_run else "replay"
                        print(f"{verb} -> {target}: {headers.get(DLQ_ERROR, '')}")
                        if not dry_run:
                            kept = [(k, v or b"") for k, v in record.headers if k not in DLQ_HEADERS]
                            try:
                                await sink.send_and_wait(target, record.value, key=record.key, headers=kept)
                            except Exception as error:  # report and go on; the commit below skips nothing sent
                                print(f"aimass replay: {target}: {type(error).__name__}", file=sys.stderr)
                                failed += 1
                                continue
                        replayed += 1
                if not dry_run and not failed:
                    await source.commit()
    finally:
        await source.stop()
        await sink.stop()
    print(f"replayed {replayed}, skipped {skipped}, failed {failed}{' (dry run)' if dry_run else ''}")
    return 0 if failed == 0 else 1
