from __future__ import annotations

from aiokafka import TopicPartition
from aiokafka.partitioner import DefaultPartitioner
from redis.asyncio import Redis

from services.infer.adapters.kafka_out import partition_of
from services.infer.adapters.redis_cache import RedisPredictionCache
from services.infer.adapters.registry_cards import RegistryCards
from services.infer.cache_keys import cache_keys, decode_probability, encode_probability, row_digests
from shared.lag import lag_of
from tests.support.factories.infer import FEATURES
from tests.support.models import write_model
from tests.support.processes import free_port


def test_partitions_match_kafkas_default_partitioner() -> None:
    default = DefaultPartitioner()
    for key in (b"patient-1", b"a" * 32, b"0f3c9e"):
        assert partition_of(key, 3) == default(key, [0, 1, 2], [0, 1, 2])


async def test_an_unreachable_redis_bypasses_the_cache_and_says_so() -> None:
    redis = Redis(port=free_port(), socket_connect_timeout=0.5)
    cache = RedisPredictionCache(redis, ttl_seconds=60, retry_seconds=30)
    assert await cache.get_many([["aimass:x"]]) is None
    assert cache.state()["state"] == "bypassed" and cache.failures == 1
    assert await cache.get_many([["aimass:x"]]) is None and cache.failures == 1  # no second round trip while bypassed
    assert RedisPredictionCache(redis, ttl_seconds=0).state() == {"state": "off"}
    await redis.aclose()


def test_cache_keys_name_the_model_version_and_hash_the_vector(settings) -> None:
    import numpy as np

    card, _ = write_model(settings, "heart", "pooled", FEATURES)
    rows = np.array([[1.0, np.nan, 3.0], [1.0, np.nan, 3.0], [1.0, 2.0, 3.0]], dtype=np.float32)
    digests = row_digests(rows)
    assert digests[0] == digests[1] != digests[2]
    [key, *_] = cache_keys(card, digests)
    assert key.startswith(f"aimass:infer:prediction:{{heart:pooled:{card.version}}}:") and "nan" not in key
    assert decode_probability(encode_probability(0.25)) == 0.25
    assert decode_probability(b"garbage") is None and decode_probability(b"2.0") is None


def test_registry_cards_refuse_paths_outside_the_registry(settings) -> None:
    write_model(settings, "heart", "pooled", FEATURES)
    cards = RegistryCards(settings)
    assert len(cards.cards("heart", "pooled")) == 1 and len(cards.active()) == 1
    assert cards.cards("..", "..") == [] and cards.cards("heart", "../heart") == []


def test_lag_counts_from_the_commit_or_from_the_beginning() -> None:
    a, b = TopicPartition("t", 0), TopicPartition("t", 1)
    assert lag_of({a: 100, b: 50}, {a: 90}, {b: 10}) == {a: 10, b: 40}


async def test_the_fast_batch_parser_falls_back_for_headers_it_cannot_decode() -> None:
    from faststream.kafka.message import KafkaAckableMessage
    from faststream.kafka.parser import AioKafkaBatchParser

    from services.infer.adapters.kafka_in import fast_tolerant_batch_parser
    from tests.support.factories.infer import raw

    parser = AioKafkaBatchParser(msg_class=KafkaAckableMessage, regex=None)
    good = raw(b"{}", ce_id="ce-1")
    bad = raw(b"{}", offset=1)
    bad.headers = [("ce_id", b"\xff\xfe"), ("x", None)]
    for batch in ((good,), (good, bad)):
        message = await fast_tolerant_batch_parser(batch, parser.parse_batch)
        assert message.raw_message is batch
