"""One demo run for the e2e modules: the platform as `make demo` starts it (the issuer and the six services as
processes on the real broker) and the four-hospital scenario played once, shared by every test of the package."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from services.cli.simulate import Run, play
from shared.broker import ensure_topics
from shared.settings import Settings
from tests.support.processes import ServiceProcess, log_tails, start_all
from tests.support.processes import test_settings as settings_for

PER_HOSPITAL = 60
COLLECTED_AT = datetime.now(UTC)  # before the platform starts: its own clock (received_at, ce_time, logs) is later
SERVICES = ["ingest", "clean", "train", "infer", "fuse", "report"]


@pytest.fixture(scope="package")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    settings = settings_for(tmp_path_factory.mktemp("demo"), f"e2e-{uuid.uuid4().hex[:8]}.")
    # As `make demo` runs: the local issuer as a process of its own, whose tokens the services accept.
    settings = settings.model_copy(update={"auth_issuer": settings.public_url("issuer"), "auth_jwks_url": None})
    asyncio.run(ensure_topics(settings))
    return settings


@pytest.fixture(scope="package")
def platform(settings: Settings) -> Iterator[dict[str, ServiceProcess]]:
    processes = start_all(["issuer", *SERVICES], settings)
    yield processes
    for process in processes.values():
        process.stop()


@pytest.fixture(scope="package")
def run(settings: Settings, platform: dict[str, ServiceProcess]) -> Run:
    played = asyncio.run(play(settings, PER_HOSPITAL, wait_seconds=240))
    assert played is not None, "Kafka unreachable"
    assert not played.problem, f"{played.problem}\n{log_tails(platform.values())}"
    return played
