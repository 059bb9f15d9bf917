"""``aimass tail``: the events on a topic, one JSON line each, with their headers."""

from __future__ import annotations

import asyncio
import json
import sys

from aiokafka.errors import KafkaConnectionError

from services.cli.kafka import consumer, kafka_unreachable
from shared.settings import Settings
from shared.topics import Topic, decode_headers, topic_name


def render(record: object) -> str:
    value = getattr(record, "value", b"") or b""
    try:
        body: object = json.loads(value)
    except (UnicodeDecodeError, json.JSONDecodeError):
        body = value.decode("utf-8", "replace")[:2000]
    return json.dumps(
        {
            "topic": record.topic,
            "partition": record.partition,
            "offset": record.offset,  # type: ignore[attr-defined]
            "headers": decode_headers(record.headers),
            "value": body,  # type: ignore[attr-defined]
        }
    )


async def tail(topic: Topic, settings: Settings, from_beginning: bool, limit: int | None, idle: float | None) -> int:
    name = topic_name(topic, settings.topic_prefix)
    client = consumer(settings, name, group_id=None, from_beginning=from_beginning)
    try:
        await client.start()
    except KafkaConnectionError:
        print(kafka_unreachable(settings), file=sys.stderr)
        return 1
    count = 0
    try:
        while limit is None or count < limit:
            try:
                record = await asyncio.wait_for(client.getone(), idle) if idle else await client.getone()
            except TimeoutError:
                break
            print(render(record), flush=True)
            count += 1
    finally:
        await client.stop()
    return 0
