"""``aimass replay``: dead letters back to the topic they came from, once their cause is fixed.

Replay reads ``deadletter`` in its own consumer group and commits what it replayed, so a dead letter is replayed
once; one that fails again comes back to ``deadletter`` with a fresh reason.
"""

from __future__ import annotations

import sys
from datetime import datetime

from aiokafka.errors import KafkaConnectionError

from services.cli.kafka import consumer, kafka_unreachable, producer
from shared.settings import Settings
from shared.topics import DLQ_ERROR, DLQ_HEADERS, DLQ_ORIGINAL_TOPIC, DLQ_SERVICE, Topic, decode_headers, topic_name


def wanted(headers: dict[str, str], timestamp_ms: int, service: str | None, reason: str | None,
           since: datetime | None) -> bool:
    if service and headers.get(DLQ_SERVICE) != service:
        return False
    if reason and reason.lower() not in headers.get(DLQ_ERROR, "").lower():
        return False
    return not (since and timestamp_ms < since.timestamp() * 1000)


async def replay(settings: Settings, service: str | None, reason: str | None, since: str | None,
                 dry_run: bool, idle: float) -> int:
    since_time = datetime.fromisoformat(since) if since else None
    source = consumer(settings, topic_name(Topic.DEADLETTER, settings.topic_prefix),
                      group_id="aimass-replay", from_beginning=True)
    sink = producer(settings)
    try:
        await source.start()
        await sink.start()
    except KafkaConnectionError:
        print(kafka_unreachable(settings), file=sys.stderr)
        return 1
    replayed = skipped = 0
    try:
        while True:
            batch = await source.getmany(timeout_ms=int(idle * 1000))
            if not batch:
                break
            for records in batch.values():
                for record in records:
                    headers = decode_headers(record.headers)
                    target = headers.get(DLQ_ORIGINAL_TOPIC)
                    if not target or not wanted(headers, record.timestamp, service, reason, since_time):
                        skipped += 1
                        continue
                    print(f"{'would replay' if dry_run else 'replay'} -> {target}: {headers.get(DLQ_ERROR, '')}")
                    if not dry_run:
                        kept = [(k, v or b"") for k, v in record.headers if k not in DLQ_HEADERS]
                        await sink.send_and_wait(target, record.value, key=record.key, headers=kept)
                    replayed += 1
            if not dry_run:
                await source.commit()
    finally:
        await source.stop()
        await sink.stop()
    print(f"replayed {replayed}, skipped {skipped}{' (dry run)' if dry_run else ''}")
    return 0
