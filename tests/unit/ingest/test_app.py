"""ingest's handler on FastStream's in-memory broker: wiring and headers, no real Kafka."""

import json

from faststream.kafka import TestKafkaBroker
from faststream.kafka.annotations import KafkaMessage

from services.ingest.app import create_service
from shared.broker import raw_body
from shared.settings import Settings
from shared.topics import CE_ID, CE_SOURCE, CE_TYPE, DLQ_ERROR, DLQ_SERVICE


def settings(tmp_path) -> Settings:
    return Settings(topic_prefix="unit.", var_dir=tmp_path, pseudonym_key="unit-test-key-0123456789")


async def test_a_json_document_is_published_as_a_canonical_record(tmp_path) -> None:
    service = create_service(settings(tmp_path))
    outputs: list[tuple[dict, dict]] = []

    @service.broker.subscriber("unit.records.ingested", decoder=raw_body)
    async def collect(message: KafkaMessage) -> None:
        outputs.append((json.loads(message.body), message.headers))

    async with TestKafkaBroker(service.broker) as broker:
        body = json.dumps({"patient_id": "MRN-1", "age_years": 50, "sex": "male"}).encode()
        await broker.publish(body, "unit.ingest.raw", headers={CE_SOURCE: "hungary", CE_ID: "m-1",
                                                               "content-type": "application/json"})
    [(record, headers)] = outputs
    assert record["hospital"] == "hungary" and record["demographics"] == {"age_years": 50, "sex": "male"}
    assert "MRN-1" not in json.dumps(record)
    assert headers[CE_TYPE] == "org.aimass.record.ingested.v1"
    assert headers[CE_ID] == record["record_id"]


async def test_garbage_goes_to_the_dead_letter_topic_with_a_reason(tmp_path) -> None:
    service = create_service(settings(tmp_path))
    dead: list[tuple[bytes, dict]] = []

    @service.broker.subscriber("unit.deadletter", decoder=raw_body)
    async def collect(message: KafkaMessage) -> None:
        dead.append((message.body, message.headers))

    async with TestKafkaBroker(service.broker) as broker:
        await broker.publish(b"garbage {{{", "unit.ingest.raw", headers={CE_SOURCE: "hungary",
                                                                          "content-type": "application/json"})
    [(body, headers)] = dead
    assert body == b"garbage {{{"
    assert headers[DLQ_SERVICE] == "ingest"
    assert headers[DLQ_ERROR].startswith("JSON: Expecting value")
    assert headers[CE_SOURCE] == "hungary"
