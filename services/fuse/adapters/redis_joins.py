"""The join state in Redis: one hash of contributions per (record, task), a marker, and two sorted sets.

Keys (``<ns>`` is the deployment's topic prefix without its dot, so two deployments sharing a Redis stay apart):

- ``aimass:fuse:<ns>:join:<task>:<record>``  hash: ``model:<site>`` -> prediction JSON, ``first_seen`` -> epoch s
- ``aimass:fuse:<ns>:fused:<task>:<record>`` string: ``claimed`` (an emission is under way) or ``emitted``
- ``aimass:fuse:<ns>:deadlines``             sorted set: open joins by deadline
- ``aimass:fuse:<ns>:leases``                sorted set: claimed joins by the end of their emission lease

Each operation is one Lua script, so replicas and restarts interleave only between whole steps. The scripts
touch several keys, which a Redis Cluster would need in one hash slot; the project runs a single Redis.
"""

from __future__ import annotations

from redis.asyncio import Redis

from services.fuse.join import Arrival
from services.fuse.store import Added, Claimed, JoinKey
from shared.redis import redis_key

FIELD_PREFIX = "model:"
FIRST_SEEN = "first_seen"
CLAIMED, EMITTED = "claimed", "emitted"

# KEYS: join, marker, deadlines. ARGV: field, payload, member, deadline, ttl, now.
ADD = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then
  return {'duplicate', redis.call('HKEYS', KEYS[1])}
end
if redis.call('EXISTS', KEYS[2]) == 1 then
  return {'late', {}}
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HSETNX', KEYS[1], 'first_seen', ARGV[6])
redis.call('EXPIRE', KEYS[1], ARGV[5])
redis.call('ZADD', KEYS[3], 'NX', ARGV[4], ARGV[3])
return {'added', redis.call('HKEYS', KEYS[1])}
"""

# KEYS: join, marker, deadlines, leases. ARGV: member, now, lease_until, ttl.
CLAIM = """
local state = redis.call('GET', KEYS[2])
if state == 'emitted' or redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('ZREM', KEYS[3], ARGV[1])
  redis.call('ZREM', KEYS[4], ARGV[1])
  return false
end
if state == 'claimed' then
  local lease = redis.call('ZSCORE', KEYS[4], ARGV[1])
  if lease and tonumber(lease) > tonumber(ARGV[2]) then
    return false
  end
end
redis.call('SET', KEYS[2], 'claimed', 'EX', ARGV[4])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('ZADD', KEYS[4], ARGV[3], ARGV[1])
return redis.call('HGETALL', KEYS[1])
"""

# KEYS: marker, leases, join. ARGV: member, ttl.
EMITTED_SCRIPT = """
redis.call('SET', KEYS[1], 'emitted', 'EX', ARGV[2])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('EXPIRE', KEYS[3], ARGV[2])
return 1
"""


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class RedisJoinStore:
    def __init__(self, redis: Redis, namespace: str, *, ttl_seconds: int, lease_seconds: float = 20.0) -> None:
        self.redis = redis
        self.namespace = namespace.rstrip(".") or "default"
        self.ttl_seconds = ttl_seconds
        self.lease_seconds = lease_seconds
        self._add = redis.register_script(ADD)
        self._claim = redis.register_script(CLAIM)
        self._emitted = redis.register_script(EMITTED_SCRIPT)

    def _key(self, *parts: str) -> str:
        return redis_key("fuse", self.namespace, *parts)

    def _join(self, key: JoinKey) -> str:
        return self._key("join", key.task, key.record_id)

    def _marker(self, key: JoinKey) -> str:
        return self._key("fused", key.task, key.record_id)

    @property
    def _deadlines(self) -> str:
        return self._key("deadlines")

    @property
    def _leases(self) -> str:
        return self._key("leases")

    @staticmethod
    def _member(key: JoinKey) -> str:
        # Task names match ^[a-z][a-z0-9_]*$, so the first ':' separates them from the record id.
        return f"{key.task}:{key.record_id}"

    async def add(self, key: JoinKey, site: str, payload: str, *, now: float, deadline: float) -> Added:
        arrival, fields = await self._add(
            keys=[self._join(key), self._marker(key), self._deadlines],
            args=[FIELD_PREFIX + site, payload, self._member(key), repr(deadline), self.ttl_seconds, repr(now)],
        )
        sites = frozenset(_text(f)[len(FIELD_PREFIX):] for f in fields if _text(f).startswith(FIELD_PREFIX))
        return Added(Arrival(_text(arrival)), sites)

    async def claim(self, key: JoinKey, *, now: float) -> Claimed | None:
        flat = await self._claim(
            keys=[self._join(key), self._marker(key), self._deadlines, self._leases],
            args=[self._member(key), repr(now), repr(now + self.lease_seconds), self.ttl_seconds],
        )
        if not flat:
            return None
        fields = {_text(k): _text(v) for k, v in zip(flat[::2], flat[1::2], strict=True)}
        payloads = {k[len(FIELD_PREFIX):]: v for k, v in fields.items() if k.startswith(FIELD_PREFIX)}
        return Claimed(payloads=payloads, first_seen=float(fields.get(FIRST_SEEN, now)))

    async def emitted(self, key: JoinKey) -> None:
        await self._emitted(keys=[self._marker(key), self._leases, self._join(key)],
                            args=[self._member(key), self.ttl_seconds])

    async def due(self, *, now: float, limit: int) -> list[JoinKey]:
        members: list[bytes | str] = []
        for zset in (self._deadlines, self._leases):
            members += await self.redis.zrangebyscore(zset, "-inf", repr(now), start=0, num=limit)
        keys = []
        for member in dict.fromkeys(_text(m) for m in members):
            task, _, record_id = member.partition(":")
            keys.append(JoinKey(task, record_id))
        return keys
