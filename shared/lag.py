"""Consumer lag as a metric: per group, topic and partition, the end offset minus the group's committed offset.

``aimass_consumer_lag{service,group,topic,partition}`` is refreshed every ``interval`` seconds by a background task
(``start`` after the broker is up, ``stop`` on shutdown). A partition the group never committed counts from its
beginning offset (all of it is still to be read). A failed refresh keeps the last values and logs once per
outage: lag is observability, never a reason for a service to fail.

``shared.service.Service`` starts one for every consumer group its subscribers declare (after the broker is up)
and stops it on shutdown; a service that needs something else registers its own exporter on its registry first::

    lag = ConsumerLagExporter(service.settings, service.name, service.metrics.registry,
                              {service.group_id: [service.topic(Topic.RECORDS_CLEAN)]})
    service.app.after_startup(lag.start)
    service.on_shutdown(lag.stop)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping, Sequence

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from prometheus_client import CollectorRegistry, Gauge

from shared.background import BackgroundTask
from shared.security import kafka_client_options
from shared.settings import Settings

log = logging.getLogger("aimass.lag")

DEFAULT_INTERVAL_SECONDS = 5.0


def lag_of(
    end: Mapping[TopicPartition, int], committed: Mapping[TopicPartition, int], beginning: Mapping[TopicPartition, int]
) -> dict[TopicPartition, int]:
    """Per partition: records after the committed offset (after the beginning when nothing was committed)."""
    return {tp: max(0, last - committed.get(tp, beginning.get(tp, 0))) for tp, last in end.items()}


class ConsumerLagExporter:
    def __init__(
        self,
        settings: Settings,
        service: str,
        registry: CollectorRegistry,
        groups: Mapping[str, Sequence[str]],
        interval: float = DEFAULT_INTERVAL_SECONDS,
    ) -> None:
        """``groups``: consumer group id -> the topics it consumes."""
        self.settings = settings
        self.service = service
        self.groups = {group: list(topics) for group, topics in groups.items()}
        self.interval = interval
        self.gauge = Gauge(
            "aimass_consumer_lag",
            "Records not yet committed by the consumer group",
            ["service", "group", "topic", "partition"],
            registry=registry,
        )
        self._loop = BackgroundTask(f"{service}-consumer-lag", self._run)
        self._admin: AIOKafkaAdminClient | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._failing = False

    async def start(self) -> None:
        self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()
        await self._close()

    async def refresh(self) -> dict[tuple[str, str, int], int]:
        """One measurement of every group's lag, exported and returned as {(group, topic, partition): lag}."""
        admin, consumer = await self._clients()
        measured: dict[tuple[str, str, int], int] = {}
        for group, topics in self.groups.items():
            partitions = [
                TopicPartition(topic, p) for topic in topics for p in sorted(consumer.partitions_for_topic(topic) or ())
            ]
            if not partitions:
                continue
            offsets = await admin.list_consumer_group_offsets(group, partitions=partitions)
            committed = {tp: meta.offset for tp, meta in offsets.items() if meta is not None and meta.offset >= 0}
            end = await consumer.end_offsets(partitions)
            beginning = await consumer.beginning_offsets([tp for tp in partitions if tp not in committed])
            for tp, lag in lag_of(end, committed, beginning).items():
                self.gauge.labels(self.service, group, tp.topic, str(tp.partition)).set(lag)
                measured[(group, tp.topic, tp.partition)] = lag
        return measured

    async def _run(self) -> None:
        while True:
            try:
                await self.refresh()
                if self._failing:
                    log.info("consumer lag measured again")
                self._failing = False
            except asyncio.CancelledError:
                raise
            except Exception as error:
                if not self._failing:
                    log.warning("consumer lag not measured", extra={"error": type(error).__name__})
                self._failing = True
                await self._close()  # reconnect on the next round
            await asyncio.sleep(self.interval)

    async def _clients(self) -> tuple[AIOKafkaAdminClient, AIOKafkaConsumer]:
        if self._admin is None or self._consumer is None:
            options = kafka_client_options(self.settings)
            admin = AIOKafkaAdminClient(**options, request_timeout_ms=10_000)
            consumer = AIOKafkaConsumer(**options, enable_auto_commit=False, request_timeout_ms=10_000)
            await admin.start()
            try:
                await consumer.start()
            except Exception:
                await admin.close()
                raise
            self._admin, self._consumer = admin, consumer
        topics = {topic for topics in self.groups.values() for topic in topics}
        if not all(self._consumer.partitions_for_topic(t) for t in topics):
            # consumer.topics() fetches metadata without keeping it: track the topics on the consumer's own client
            # and wait for its refresh, which learns the partitions of topics created since.
            client = self._consumer._client
            client.set_topics(sorted(topics))
            await client.force_metadata_update()
        return self._admin, self._consumer

    async def _close(self) -> None:
        admin, consumer, self._admin, self._consumer = self._admin, self._consumer, None, None
        for client in (consumer, admin):
            if client is not None:
                with contextlib.suppress(Exception):
                    await (client.stop() if isinstance(client, AIOKafkaConsumer) else client.close())
