"""The latency benchmark's load: real heart-disease documents sent to ``ingest.raw`` on an open-loop schedule.

Open loop: every record's send time is fixed before the run (``start + n / rate``) and its latency is measured from
that planned time, not from when the sender got round to it. A sender that falls behind (a slow broker ack, a busy
CPU) therefore shows up as latency instead of quietly lowering the load ("coordinated omission").
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from aiokafka import AIOKafkaProducer

from services.cli.scenario.heart import HOSPITALS, canonical_record, load_heart_disease
from shared.topics import CE_ID, CE_SOURCE, CE_SPECVERSION, CE_TYPE, CONTENT_TYPE, derived_event_id

JSON_TYPE = b"application/json"


@dataclass
class Outgoing:
    """One document to send and what it must become: ingest derives the record id from hospital and ce_id."""

    hospital: str
    ce_id: str
    body: bytes
    record_id: str
    planned: float = 0.0  # wall-clock seconds (time.time) the schedule fixed for its send
    sent: float = 0.0  # when the producer accepted it


def documents(total: int, start: datetime | None = None) -> list[Outgoing]:
    """``total`` documents cycling over the 920 real rows. Each one is a new encounter an hour after the previous
    one, so clean's content de-duplication (which ignores ids but not dates) keeps every repeat."""
    rows = load_heart_disease().to_dict("records")
    start = start or datetime.now(UTC).replace(microsecond=0)
    out = []
    for n in range(total):
        row = rows[n % len(rows)]
        hospital = HOSPITALS[row["dataset"]]
        ce_id = str(uuid.uuid4())
        body = json.dumps(canonical_record(row, start + timedelta(hours=n))).encode()
        out.append(Outgoing(hospital, ce_id, body, derived_event_id("ingest", f"{hospital}/{ce_id}", 0)))
    return out


def headers(item: Outgoing) -> list[tuple[str, bytes]]:
    return [
        (CE_SPECVERSION, b"1.0"),
        (CE_ID, item.ce_id.encode()),
        (CE_SOURCE, item.hospital.encode()),
        (CE_TYPE, b"org.aimass.document.submitted.v1"),
        (CONTENT_TYPE, JSON_TYPE),
    ]


async def send_open_loop(
    client: AIOKafkaProducer, topic: str, items: list[Outgoing], rate: float, lead_seconds: float = 0.5
) -> None:
    """Sends ``items[n]`` at ``start + n / rate``; stamps ``planned`` and ``sent`` on each. Waits for every ack.

    Sends are not awaited one by one (that would close the loop): each is handed to the producer's buffer when due
    and all acknowledgements are collected at the end.
    """
    start = time.time() + lead_seconds
    for n, item in enumerate(items):
        item.planned = start + n / rate
    acks = []
    n = 0
    while n < len(items):
        now = time.time()
        while n < len(items) and items[n].planned <= now:
            item = items[n]
            acks.append(await client.send(topic, item.body, headers=headers(item)))
            item.sent = time.time()
            n += 1
        if n < len(items):
            await asyncio.sleep(max(items[n].planned - time.time(), 0.0))
    await asyncio.gather(*acks)
