"""Exit 0 when the Kafka broker at argv[1] answers a metadata request with at least one broker.

Security settings (SASL, SSL) come from the same AIMASS_KAFKA_* variables the services read.
"""

import asyncio
import sys

from aiokafka import AIOKafkaClient

from shared.security import kafka_client_options
from shared.settings import Settings


async def _ready(bootstrap: str) -> bool:
    client = AIOKafkaClient(**kafka_client_options(Settings(kafka_bootstrap=bootstrap)), request_timeout_ms=3000)
    try:
        await client.bootstrap()
        return bool(client.cluster.brokers())
    except Exception:
        return False
    finally:
        await client.close()


if __name__ == "__main__":
    sys.exit(0 if asyncio.run(_ready(sys.argv[1])) else 1)
