"""Every service exports aimass_consumer_lag for its consumer groups, unless it wired its own exporter."""

from __future__ import annotations

from pathlib import Path

from shared.lag import ConsumerLagExporter
from shared.service import Service
from shared.settings import Settings
from shared.topics import Topic


def service_with_subscribers(tmp_path: Path) -> Service:
    service = Service("fuse", Settings(var_dir=tmp_path, topic_prefix="t."))

    @service.subscriber(Topic.PREDICTIONS)
    async def on_prediction(_: bytes) -> None: ...

    @service.subscriber(Topic.MODELS_RELEASED, group_id=None)
    async def on_card(_: bytes) -> None: ...

    return service


def test_consumer_groups_come_from_the_subscribers(tmp_path: Path) -> None:
    assert service_with_subscribers(tmp_path).consumer_groups() == {"t-fuse": ["t.predictions"]}


async def test_a_service_with_its_own_exporter_keeps_it(tmp_path: Path) -> None:
    service = service_with_subscribers(tmp_path)
    ConsumerLagExporter(service.settings, service.name, service.metrics.registry, {"g": ["t.predictions"]})
    await service._start_lag()  # would raise "Duplicated timeseries" if it registered a second gauge
    assert service._lag is None  # the service's own exporter was not started beside it
    families = [m.name for m in service.metrics.registry.collect()]
    assert families.count("aimass_consumer_lag") == 1
