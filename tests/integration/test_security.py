"""A broker that demands SASL/SCRAM: services authenticate from settings; secrets never reach logs or /readyz."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator

import httpx
import pytest
from pydantic import SecretStr

from shared.broker import ensure_topics
from shared.settings import Settings
from shared.topics import CE_ID, CE_SOURCE, Topic, derived_event_id, topic_name
from tests.support.kafka import TopicReader, producer
from tests.support.processes import ServiceProcess, start_all
from tests.support.stack import PrivateStack

SERVICE_PASSWORD = f"svc-{uuid.uuid4().hex}"
ADMIN_PASSWORD = f"adm-{uuid.uuid4().hex}"
PSEUDONYM_KEY = f"key-{uuid.uuid4().hex}"


@pytest.fixture(scope="module")
def secure_settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    stack = PrivateStack(
        tmp_path_factory.mktemp("sasl"),
        "sec.",
        KAFKA_SECURITY="sasl-scram",
        KAFKA_ADMIN_PASSWORD=ADMIN_PASSWORD,
        KAFKA_SCRAM_USERS=f"aimass={SERVICE_PASSWORD}",
        AIMASS_KAFKA_SECURITY_PROTOCOL="SASL_PLAINTEXT",
        AIMASS_KAFKA_SASL_USERNAME="admin",
        AIMASS_KAFKA_SASL_PASSWORD=ADMIN_PASSWORD,
    )
    stack.start_kafka()
    try:
        settings = stack.settings.model_copy(
            update={
                "kafka_security_protocol": "SASL_PLAINTEXT",
                "kafka_sasl_mechanism": "SCRAM-SHA-256",
                "kafka_sasl_username": "aimass",
                "kafka_sasl_password": SecretStr(SERVICE_PASSWORD),
                "pseudonym_key": SecretStr(PSEUDONYM_KEY),
                "redis_url": Settings().redis_url,
            }
        )
        asyncio.run(ensure_topics(settings))
        yield settings
    finally:
        stack.stop_kafka()


def secret_env(settings: Settings, password: str) -> dict[str, str]:
    return {
        "AIMASS_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "AIMASS_KAFKA_SASL_MECHANISM": "SCRAM-SHA-256",
        "AIMASS_KAFKA_SASL_USERNAME": "aimass",
        "AIMASS_KAFKA_SASL_PASSWORD": password,
    }


async def test_services_authenticate_with_scram_and_never_reveal_secrets(secure_settings: Settings) -> None:
    services = start_all(["ingest", "clean"], secure_settings, **secret_env(secure_settings, SERVICE_PASSWORD))
    try:
        ce_id = str(uuid.uuid4())
        reader = await TopicReader(secure_settings, Topic.RECORDS_CLEAN).open()
        client = await producer(secure_settings)
        try:
            body = json.dumps({"patient_id": "MRN-SEC-1", "age_years": 40, "sex": "female"}).encode()
            await client.send_and_wait(
                topic_name(Topic.INGEST_RAW, secure_settings.topic_prefix),
                body,
                headers=[(CE_SOURCE, b"cleveland"), (CE_ID, ce_id.encode()), ("content-type", b"application/json")],
            )
            expected = derived_event_id("ingest", f"cleveland/{ce_id}", 0)
            await reader.wait_for(lambda r: json.loads(r.value)["record_id"] == expected, timeout=10)
        finally:
            await client.stop()
            await reader.close()
        for process in services.values():
            ready = httpx.get(f"{process.url}/readyz", timeout=3)
            assert ready.status_code == 200
            assert SERVICE_PASSWORD not in ready.text and PSEUDONYM_KEY not in ready.text
            metrics = httpx.get(f"{process.url}/metrics", timeout=3).text
            assert SERVICE_PASSWORD not in metrics and PSEUDONYM_KEY not in metrics
    finally:
        for process in services.values():
            process.stop()
    for process in services.values():
        log = process.log_path.read_text()
        assert SERVICE_PASSWORD not in log and PSEUDONYM_KEY not in log


def test_a_wrong_password_is_refused_and_not_logged(secure_settings: Settings) -> None:
    wrong = f"wrong-{uuid.uuid4().hex}"
    service = ServiceProcess("fuse", secure_settings, **secret_env(secure_settings, wrong)).start()
    try:
        assert service.process is not None
        service.process.wait(timeout=60)  # cannot start without the broker: exits rather than serve half-ready
    finally:
        service.stop()
    log = service.log_path.read_text()
    assert service.process.returncode != 0
    assert "SaslAuthenticationFailed" in log or "Authentication failed" in log
    assert wrong not in log
