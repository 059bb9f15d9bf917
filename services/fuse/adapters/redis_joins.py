"""The join state in Redis: one hash of contributions per (record, task), a marker, and two sorted sets.

Keys (``<ns>`` is the deployment's topic prefix without its dot, so two deployments sharing a Redis stay apart):

- ``aimass:fuse:<ns>:join:<task>:<record>``  hash: ``model:<site>`` -> prediction JSON (emptied once the join is
  emitted), ``first_seen`` -> epoch s
- ``aimass:fuse:<ns>:fused:<task>:<record>`` string: ``claimed`` (an emission is under way) or ``emitted``
- ``aimass:fuse:<ns>:deadlines``             sorted set: open joins by deadline
- ``aimass:fuse:<ns>:leases``                sorted set: claimed joins by the end of their emission lease

Each operation is one Lua script over a whole batch (one round trip), so replicas and restarts interleave only between
whole steps. The scripts touch many keys, which a Redis Cluster would need in one hash slot; the project runs a single
Redis.
"""

from __future__ import annotations

from collections.abc import Sequence

from redis.asyncio import Redis

from services.fuse.join import Arrival
from services.fuse.ports import Added, Arriving, Claimed, JoinKey
from shared.redis import redis_key

FIELD_PREFIX = "model:"
FIRST_SEEN = "first_seen"

# One call per consumed batch. KEYS: deadlines, then join and marker of each item.
# ARGV: ttl, now, then field, payload, member and deadline of each item. One {arrival, fields} per item.
ADD_MANY = """
local out = {}
local ttl, now = ARGV[1], ARGV[2]
for i = 1, (#KEYS - 1) / 2 do
  local join, marker = KEYS[2 * i], KEYS[2 * i + 1]
  local a = 2 + 4 * (i - 1)
  local field, payload, member, deadline = ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4]
  if redis.call('HEXISTS', join, field) == 1 then
    out[i] = {'duplicate', redis.call('HKEYS', join)}
  elseif redis.call('EXISTS', marker) == 1 then
    out[i] = {'late', {}}
  else
    redis.call('HSET', join, field, payload)
    redis.call('HSETNX', join, 'first_seen', now)
    redis.call('EXPIRE', join, ttl)
    redis.call('ZADD', KEYS[1], 'NX', deadline, member)
    out[i] = {'added', redis.call('HKEYS', join)}
  end
end
return out
"""

# KEYS: deadlines, leases, then join and marker of each key. ARGV: now, lease_until, ttl, then each key's member.
# One reply per key: the join's fields and values when this caller claimed it, else an empty list.
CLAIM_MANY = """
local out = {}
local now = tonumber(ARGV[1])
for i = 1, (#KEYS - 2) / 2 do
  local join, marker, member = KEYS[1 + 2 * i], KEYS[2 + 2 * i], ARGV[3 + i]
  local state = redis.call('GET', marker)
  local claimable = true
  if state == 'emitted' or redis.call('EXISTS', join) == 0 then
    redis.call('ZREM', KEYS[1], member)
    redis.call('ZREM', KEYS[2], member)
    claimable = false
  elseif state == 'claimed' then
    local lease = redis.call('ZSCORE', KEYS[2], member)
    if lease and tonumber(lease) > now then
      claimable = false
    end
  end
  if claimable then
    redis.call('SET', marker, 'claimed', 'EX', ARGV[3])
    redis.call('ZREM', KEYS[1], member)
    redis.call('ZADD', KEYS[2], ARGV[2], member)
    out[i] = redis.call('HGETALL', join)
  else
    out[i] = {}
  end
end
return out
"""

# KEYS: deadlines, leases, then the marker of each key. ARGV: now, then each key's member.
RELEASE_MANY = """
for i = 1, #KEYS - 2 do
  if redis.call('GET', KEYS[2 + i]) == 'claimed' then
    redis.call('DEL', KEYS[2 + i])
    redis.call('ZREM', KEYS[2], ARGV[1 + i])
    redis.call('ZADD', KEYS[1], ARGV[1], ARGV[1 + i])
  end
end
return 1
"""

# KEYS: leases, then marker and join of each key. ARGV: ttl, then each key's member.
# The join keeps which models answered (a repeat is a duplicate, another model late) but not their predictions:
# nothing reads them after the emission, and for the dedup TTL (7 days) they were most of fuse's Redis memory.
EMITTED_MANY = """
for i = 1, (#KEYS - 1) / 2 do
  local join = KEYS[2 * i + 1]
  redis.call('SET', KEYS[2 * i], 'emitted', 'EX', ARGV[1])
  redis.call('ZREM', KEYS[1], ARGV[1 + i])
  for _, field in ipairs(redis.call('HKEYS', join)) do
    if string.sub(field, 1, 6) == 'model:' then
      redis.call('HSET', join, field, '')
    end
  end
  redis.call('EXPIRE', join, ARGV[1])
end
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
        self._add_many = redis.register_script(ADD_MANY)
        self._claim_many = redis.register_script(CLAIM_MANY)
        self._release_many = redis.register_script(RELEASE_MANY)
        self._emitted_many = redis.register_script(EMITTED_MANY)

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

    async def add_many(self, arriving: Sequence[Arriving], *, now: float) -> list[Added]:
        if not arriving:
            return []
        keys, args = [self._deadlines], [self.ttl_seconds, repr(now)]
        for item in arriving:
            keys += [self._join(item.key), self._marker(item.key)]
            args += [FIELD_PREFIX + item.site, item.payload, self._member(item.key), repr(item.deadline)]
        replies = await self._add_many(keys=keys, args=args)
        return [
            Added(
                Arrival(_text(arrival)),
                frozenset(_text(f)[len(FIELD_PREFIX) :] for f in fields if _text(f).startswith(FIELD_PREFIX)),
            )
            for arrival, fields in replies
        ]

    async def claim_many(self, keys: Sequence[JoinKey], *, now: float) -> dict[JoinKey, Claimed]:
        if not keys:
            return {}
        redis_keys, args = (
            [self._deadlines, self._leases],
            [repr(now), repr(now + self.lease_seconds), self.ttl_seconds],
        )
        for key in keys:
            redis_keys += [self._join(key), self._marker(key)]
            args.append(self._member(key))
        replies = await self._claim_many(keys=redis_keys, args=args)
        claimed = {}
        for key, flat in zip(keys, replies, strict=True):
            if flat:
                fields = {_text(k): _text(v) for k, v in zip(flat[::2], flat[1::2], strict=True)}
                payloads = {k[len(FIELD_PREFIX) :]: v for k, v in fields.items() if k.startswith(FIELD_PREFIX)}
                claimed[key] = Claimed(payloads=payloads, first_seen=float(fields.get(FIRST_SEEN, now)))
        return claimed

    async def release_many(self, keys: Sequence[JoinKey], *, now: float) -> None:
        if keys:
            await self._release_many(
                keys=[self._deadlines, self._leases, *(self._marker(k) for k in keys)],
                args=[repr(now), *(self._member(k) for k in keys)],
            )

    async def emitted_many(self, keys: Sequence[JoinKey]) -> None:
        if not keys:
            return
        redis_keys, args = [self._leases], [self.ttl_seconds]
        for key in keys:
            redis_keys += [self._marker(key), self._join(key)]
            args.append(self._member(key))
        await self._emitted_many(keys=redis_keys, args=args)

    async def due(self, *, now: float, limit: int) -> list[JoinKey]:
        members: list[bytes | str] = []
        for zset in (self._deadlines, self._leases):
            members += await self.redis.zrangebyscore(zset, "-inf", repr(now), start=0, num=limit)
        keys = []
        for member in dict.fromkeys(_text(m) for m in members):
            task, _, record_id = member.partition(":")
            keys.append(JoinKey(task, record_id))
        return keys
