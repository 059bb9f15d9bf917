"""One private Kafka + Redis and the five streaming services as real processes, shared by every chaos test.

Each test sends its own batch of documents, so one stack serves them all. ``AIMASS_CHAOS_RECORDS``: records per
batch (default 120, the fast variant in `make test`; `make chaos` sends 5,000); ``AIMASS_CHAOS_KILLS``: kills per
victim (default 1; `make chaos`: 3).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import pytest

from shared.broker import ensure_topics
from shared.schemas.models import ModelCard
from tests.chaos.pipeline import MODEL_SITES, STREAMING_SERVICES, Pipeline
from tests.support.models import heart_task, write_model
from tests.support.processes import start_all
from tests.support.stack import PrivateStack


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "chaos: breaks services, the broker or Redis on purpose (tests/chaos)")


@pytest.fixture(scope="session")
def chaos_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateStack]:
    with PrivateStack(tmp_path_factory.mktemp("chaos"), f"chaos-{uuid.uuid4().hex[:6]}.") as stack:
        asyncio.run(ensure_topics(stack.settings))
        yield stack


@pytest.fixture(scope="session")
def chaos_models(chaos_stack: PrivateStack) -> list[ModelCard]:
    """Real (small, untrained) ONNX models in the stack's registry: every record is scored by each, fuse joins them."""
    features = heart_task().feature_names
    return [
        write_model(chaos_stack.settings, "heart_disease", site, features, seed=seed)[0]
        for seed, site in enumerate(MODEL_SITES)
    ]


@pytest.fixture(scope="session")
def pipeline(chaos_stack: PrivateStack, chaos_models: list[ModelCard]) -> Iterator[Pipeline]:
    services = start_all(STREAMING_SERVICES, chaos_stack.settings)
    try:
        yield Pipeline(chaos_stack, services, len(chaos_models))
    finally:
        for process in services.values():
            process.stop()
