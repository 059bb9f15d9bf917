"""The PHI scanner on the real broker: identifiers planted in a topic's value, key and header, in a dead letter's
reason, in a log file and in a metric label are each found where they were planted; what hospitals sent (ingest.raw,
a dead letter's original bytes) and other prefixes' topics are not reported."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from prometheus_client import CollectorRegistry, Counter, start_http_server

from shared.broker import ensure_topics
from shared.settings import Settings
from shared.topics import DLQ_ERROR, Topic, topic_name
from tests.support.kafka import producer
from tests.support.phi import scan
from tests.support.processes import free_port
from tests.support.processes import test_settings as settings_for

pytestmark = pytest.mark.integration
PLANTED = {
    "value": "Szabadkai",
    "key": "CCF-0048213",
    "header": "+1-562-555-0187",
    "reason": "Okonkwo-Lind",
    "log": "412 Quarry Hollow Road",
    "metric": "Erzsébet",
}
INPUT_ONLY = "Vantongeren"  # only in ingest.raw and in a dead letter's original value: not a leak
ELSEWHERE = "Wetherell"  # only in another prefix's topic


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    own = settings_for(tmp_path_factory.mktemp("phi"), f"it-phi-{uuid.uuid4().hex[:8]}.")
    asyncio.run(ensure_topics(own, [Topic.INGEST_RAW, Topic.RECORDS_CLEAN, Topic.PREDICTIONS, Topic.DEADLETTER]))
    return own


async def plant(settings: Settings, other: Settings) -> None:
    client = await producer(settings)
    try:

        def name(topic: Topic) -> str:
            return topic_name(topic, settings.topic_prefix)

        await client.send_and_wait(name(Topic.RECORDS_CLEAN), f'{{"note": "{PLANTED["value"]}"}}'.encode())
        await client.send_and_wait(name(Topic.PREDICTIONS), b"{}", key=PLANTED["key"].encode())
        await client.send_and_wait(name(Topic.PREDICTIONS), b"{}", headers=[("ce_source", PLANTED["header"].encode())])
        await client.send_and_wait(name(Topic.INGEST_RAW), INPUT_ONLY.encode(), headers=[("ce_source", b"cleveland")])
        await client.send_and_wait(
            name(Topic.DEADLETTER),
            INPUT_ONLY.encode(),
            key=INPUT_ONLY.encode(),
            headers=[("ce_source", INPUT_ONLY.encode()), (DLQ_ERROR, f"bad name {PLANTED['reason']}".encode())],
        )
        await client.send_and_wait(topic_name(Topic.RECORDS_CLEAN, other.topic_prefix), ELSEWHERE.encode())
    finally:
        await client.stop()


async def test_each_planted_identifier_is_found_where_it_was_planted(settings: Settings, tmp_path) -> None:
    other = settings_for(tmp_path, f"it-phi-other-{uuid.uuid4().hex[:8]}.")
    await ensure_topics(other, [Topic.RECORDS_CLEAN])
    await plant(settings, other)
    log = settings.var_dir / "log" / "clean-1.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text(f'{{"msg": "started"}}\n{{"msg": "cleaned", "street": "{PLANTED["log"]}"}}\n')
    registry = CollectorRegistry()
    Counter("aimass_phi_test", "planted", ["hospital"], registry=registry).labels(PLANTED["metric"]).inc()
    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    try:
        hits = await scan(
            [*PLANTED.values(), INPUT_ONLY, ELSEWHERE, "never-planted-4711"],
            settings,
            metrics_urls=[f"http://127.0.0.1:{port}/metrics"],
        )
    finally:
        server.shutdown()
        thread.join(5)

    def topic(name: Topic) -> str:
        return topic_name(name, settings.topic_prefix)

    where = {(h.identifier, h.place): h.where for h in hits}
    assert where[(PLANTED["value"], "topic")].startswith(topic(Topic.RECORDS_CLEAN) + "[")
    assert where[(PLANTED["value"], "topic")].endswith(" value")
    assert where[(PLANTED["key"], "topic")].endswith(" key")
    assert where[(PLANTED["header"], "topic")].endswith(" header ce_source")
    assert where[(PLANTED["reason"], "topic")].startswith(topic(Topic.DEADLETTER))
    assert where[(PLANTED["reason"], "topic")].endswith(f" header {DLQ_ERROR}")
    assert where[(PLANTED["log"], "log")] == f"{log}:2"
    assert where[(PLANTED["metric"], "metric")].endswith("aimass_phi_test_total{hospital}")
    assert {h.identifier for h in hits} == set(PLANTED.values())  # not the input, not another prefix, not unplanted

    everything = await scan([INPUT_ONLY], settings, inputs_too=True)
    assert {h.where.split("[")[0] for h in everything} == {topic(Topic.INGEST_RAW), topic(Topic.DEADLETTER)}
    assert len(everything) == 4  # the raw value; the dead letter's value, key and original ce_source
