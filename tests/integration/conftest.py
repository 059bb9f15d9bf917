"""Integration fixtures: the real Kafka and Redis (`make test` starts them), a topic prefix per run."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from aiokafka import AIOKafkaClient
from redis.asyncio import Redis

from shared.broker import ensure_topics
from shared.settings import Settings
from tests.support.processes import ServiceProcess, start_all, test_settings


async def _infrastructure_problem(settings: Settings) -> str | None:
    client = AIOKafkaClient(bootstrap_servers=settings.kafka_bootstrap, request_timeout_ms=3000)
    try:
        await client.bootstrap()
    except Exception:
        return f"Kafka does not answer at {settings.kafka_bootstrap}"
    finally:
        await client.close()
    redis = Redis.from_url(settings.redis_url.get_secret_value(), socket_connect_timeout=2)
    try:
        await redis.ping()
    except Exception:
        return f"Redis does not answer at {settings.redis_url.get_secret_value()}"
    finally:
        await redis.aclose()
    return None


@pytest.fixture(scope="session")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    settings = test_settings(tmp_path_factory.mktemp("var"), f"it-{uuid.uuid4().hex[:8]}.")
    problem = asyncio.run(_infrastructure_problem(settings))
    if problem:
        pytest.fail(f"{problem}: run the suite with `make test`, which starts Kafka and Redis", pytrace=False)
    asyncio.run(ensure_topics(settings))
    return settings


@pytest.fixture(scope="session")
def pipeline(settings: Settings) -> Iterator[dict[str, ServiceProcess]]:
    """All six services, started once for the integration tests."""
    processes = start_all(["ingest", "clean", "train", "infer", "fuse", "report"], settings)
    yield processes
    for process in processes.values():
        process.stop()


@pytest.fixture
async def redis(settings: Settings) -> AsyncIterator[Redis]:
    client = Redis.from_url(settings.redis_url.get_secret_value())
    yield client
    await client.aclose()
