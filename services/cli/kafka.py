"""aiokafka clients for the command line (the services use FastStream; a CLI wants plain clients)."""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from shared.broker import MAX_MESSAGE_BYTES
from shared.security import kafka_client_options
from shared.settings import Settings


def producer(settings: Settings) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        **kafka_client_options(settings),
        acks="all",
        enable_idempotence=True,
        max_request_size=MAX_MESSAGE_BYTES,
        client_id="aimass-cli",
    )


def consumer(settings: Settings, *topics: str, group_id: str | None, from_beginning: bool) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        *topics,
        **kafka_client_options(settings),
        group_id=group_id,
        client_id="aimass-cli",
        auto_offset_reset="earliest" if from_beginning else "latest",
        enable_auto_commit=False,
    )


def kafka_unreachable(settings: Settings) -> str:
    return (
        f"aimass: cannot reach Kafka at {settings.kafka_bootstrap} (AIMASS_KAFKA_BOOTSTRAP); "
        "start the stack with 'make up'"
    )
