"""Exit 0 when the Kafka broker at argv[1] answers a metadata request with at least one broker."""

import asyncio
import sys

from aiokafka import AIOKafkaClient


async def _ready(bootstrap: str) -> bool:
    client = AIOKafkaClient(bootstrap_servers=bootstrap, request_timeout_ms=3000)
    try:
        await client.bootstrap()
        return bool(client.cluster.brokers())
    except Exception:
        return False
    finally:
        await client.close()


if __name__ == "__main__":
    sys.exit(0 if asyncio.run(_ready(sys.argv[1])) else 1)
