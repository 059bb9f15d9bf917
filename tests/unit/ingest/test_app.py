"""ingest's handler on FastStream's in-memory broker: wiring and headers, no real Kafka."""

import json

from faststream.kafka import TestKafkaBroker
from faststream.kafka.annotations import KafkaMessage

from services.ingest.app import create_service
from shared.broker import raw_body
from shared.settings import PROJECT_ROOT, Settings
from shared.topics import CE_ID, CE_SOURCE, CE_TYPE, DLQ_ERROR, DLQ_SERVICE


def settings(tmp_path) -> Settings:
    return Settings(
        topic_prefix="unit.",
        var_dir=tmp_path,
        pseudonym_key="unit-test-key-0123456789",
        hospitals_dir=PROJECT_ROOT / "deploy" / "hospitals",
    )


async def test_a_json_document_is_published_as_a_canonical_record(tmp_path) -> None:
    service = create_service(settings(tmp_path))
    outputs: list[tuple[dict, dict]] = []

    @service.broker.subscriber("unit.records.ingested", decoder=raw_body)
    async def collect(message: KafkaMessage) -> None:
        outputs.append((json.loads(message.body), message.headers))

    async with TestKafkaBroker(service.broker) as broker:
        body = json.dumps({"patient_id": "MRN-1", "age_years": 50, "sex": "male"}).encode()
        await broker.publish(
            body, "unit.ingest.raw", headers={CE_SOURCE: "hungary", CE_ID: "m-1", "content-type": "application/json"}
        )
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
        await broker.publish(
            b"garbage {{{", "unit.ingest.raw", headers={CE_SOURCE: "hungary", "content-type": "application/json"}
        )
    [(body, headers)] = dead
    assert body == b"garbage {{{"
    assert headers[DLQ_SERVICE] == "ingest"
    assert headers[DLQ_ERROR].startswith("JSON: Expecting value")
    assert headers[CE_SOURCE] == "hungary"


async def test_a_bad_csv_row_is_dead_lettered_alone_and_the_document_audited(tmp_path) -> None:
    from tests.support.factories.ingest import fixture

    service = create_service(settings(tmp_path))
    seen: dict[str, list[tuple[bytes, dict]]] = {"records": [], "dead": [], "audit": []}

    def collector(bucket: list[tuple[bytes, dict]]):
        async def collect(message: KafkaMessage) -> None:
            bucket.append((message.body, message.headers))

        return collect

    for topic, name in (("unit.records.ingested", "records"), ("unit.deadletter", "dead"), ("unit.audit", "audit")):
        service.broker.subscriber(topic, decoder=raw_body)(collector(seen[name]))

    async with TestKafkaBroker(service.broker) as broker:
        await broker.publish(
            fixture("va-long-beach-with-a-bad-row.csv"),
            "unit.ingest.raw",
            headers={CE_SOURCE: "va-long-beach", CE_ID: "export-7", "content-type": "text/csv"},
        )
    assert len(seen["records"]) == 2
    [(body, headers)] = seen["dead"]
    assert headers[DLQ_ERROR] == "CSV row 2 column 'resting_bp_mmhg': not a number"
    assert headers[CE_ID] == "export-7#row-2" and headers["content-type"] == "text/csv"
    assert body.decode().splitlines()[1].startswith("VA-LB-300412,")
    [(audit, audit_headers)] = seen["audit"]
    event = json.loads(audit)
    assert event["outcome"] == "partially_ingested" and event["records"] == 2 and event["rejected_parts"] == 1
    assert event["hospital"] == "va-long-beach" and event["source_format"] == "csv"
    assert sorted(event["pseudonyms"]) == sorted({json.loads(b)["patient"] for b, _ in seen["records"]})
    assert audit_headers[CE_TYPE] == "org.aimass.audit.recorded.v1"
    assert "VA-LB-300411" not in audit.decode() and "Ashdown" not in audit.decode()
    metrics = service.metrics.render().decode()
    assert 'aimass_ingest_messages_total{format="csv",hospital="va-long-beach"} 1.0' in metrics
    assert 'aimass_ingest_parse_failures_total{reason="schema"} 1.0' in metrics
    assert 'aimass_ingest_bytes_total{hospital="va-long-beach"}' in metrics
    assert 'aimass_ingest_parse_seconds_count{format="csv"} 1.0' in metrics
