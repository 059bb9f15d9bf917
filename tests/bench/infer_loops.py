"""The two consumers infer is compared with in bench_infer.py, run as processes like the service itself:

- ``naive``: how the seed's code would serve: one record per handler call, the full ``CleanRecord`` parsed, each
  active model's torch module run eagerly on that one row, each ``Prediction`` built with pydantic and published
  with ``EventPublisher.publish`` (wait for the ack), then the record's offset committed.
- ``passthrough``: the ceiling for a Python service: the same batch consumer and the same producer path as infer
  (``KafkaEventSender``), the same number and size of output messages per record, but nothing parsed, scored or
  cached.

``python -m tests.bench.infer_loops naive|passthrough`` (settings from the AIMASS_* environment; the pass-through
reads BENCH_OUTPUTS_PER_RECORD and BENCH_OUTPUT_BYTES).
"""

from __future__ import annotations

import asyncio
import os
import sys
import time

import torch
import uvicorn
from faststream.kafka.annotations import KafkaMessage

from services.infer.adapters.kafka_out import KafkaEventSender
from shared.registry import active_cards
from shared.schemas.predictions import Prediction
from shared.schemas.records import CleanRecord
from shared.service import Service
from shared.settings import Settings, get_settings
from shared.topics import CE_ID, Topic, decode_headers, derived_event_id
from tests.support.models import load_torch


def naive(settings: Settings) -> Service:
    service = Service("infer", settings)
    out = service.publisher(Topic.PREDICTIONS, entity="prediction", verb="made", schema=Prediction)
    models = [(card, load_torch(settings, card)) for card in active_cards(settings)]
    torch.set_num_threads(1)

    @service.subscriber(Topic.RECORDS_CLEAN, group_id="aimass-bench-naive")
    async def on_clean(message: KafkaMessage) -> None:
        raw = message.raw_message
        record = CleanRecord.model_validate_json(raw.value)
        event_id = decode_headers(raw.headers).get(CE_ID, "")
        for card, model in models:
            features = record.features.get(card.task)
            if features is None:
                continue
            started = time.perf_counter()
            with torch.no_grad():
                x = torch.tensor([[float("nan") if v is None else v for v in features.values]])
                probability = float(model(x)[0])
            prediction = Prediction(
                record_id=record.record_id,
                patient=record.patient,
                hospital=record.hospital,
                task=card.task,
                model=card.ref,
                probability=probability,
                label=int(probability >= card.threshold),
                latency_ms=(time.perf_counter() - started) * 1000,
                features=features.values,
                quality_flags=record.quality_flags,
            )
            await out.publish(
                prediction, event_id=derived_event_id("infer", event_id, card.version), key=record.patient
            )

    return service


class Copy:
    def __init__(self, key: bytes, value: bytes, event_id: str) -> None:
        self.key, self.value, self.event_id = key, value, event_id


def passthrough(settings: Settings) -> Service:
    service = Service("infer", settings)
    sender = KafkaEventSender(settings, "infer", service.topic(Topic.PREDICTIONS), entity="prediction", verb="made")
    outputs = int(os.environ["BENCH_OUTPUTS_PER_RECORD"])
    body = b"x" * int(os.environ["BENCH_OUTPUT_BYTES"])
    service.on_startup(sender.start)
    service.on_shutdown(sender.stop)

    @service.batch_subscriber(
        Topic.RECORDS_CLEAN,
        group_id="aimass-bench-passthrough",
        max_records=settings.infer_batch_max_records,
        batch_timeout_ms=settings.infer_batch_timeout_ms,
    )
    async def on_clean(message: KafkaMessage) -> None:
        copies = []
        for raw in message.raw_message:
            event_id = decode_headers(raw.headers).get(CE_ID, "")
            copies.extend(Copy(raw.key, body, derived_event_id("infer", event_id, n)) for n in range(outputs))
        await sender.send_all(copies)

    return service


def main(kind: str) -> None:
    settings = get_settings()
    service = {"naive": naive, "passthrough": passthrough}[kind](settings)
    config = uvicorn.Config(
        service.http, host="127.0.0.1", port=settings.infer_port, lifespan="on", log_config=None, access_log=False
    )
    asyncio.run(uvicorn.Server(config).serve())


if __name__ == "__main__":
    main(sys.argv[1])
