"""What clean has already handled, in Redis, so a restart or a second replica does not re-emit.

Two sets, both with the configured TTL (``AIMASS_DEDUP_TTL_SECONDS``): event ids (``ce_id``) remembered after the
output was acknowledged, and content fingerprints claimed by the first event that carried them. A claim names its
event, so the redelivery of that same event (a crash between claim and publish) still goes through, while the same
content under any other id is a duplicate.

A batch costs two round trips, whatever its size: one script judges every record (seen? else claim its content), in
batch order and atomically, and one script remembers the batch after its outputs were acknowledged. The scripts
touch several keys, which a Redis Cluster would need in one hash slot; the project runs a single Redis (as fuse).
A Redis error propagates: the batch is not committed and comes again.
"""

from __future__ import annotations

from collections.abc import Sequence

from redis.asyncio import Redis

from services.clean.dedup import Candidate, Verdict, first_of_each_event, verdicts
from shared.redis import redis_key

# KEYS: (seen key, content key) per record; ARGV: ttl, then the records' event ids. 0 seen, 1 content claimed by
# another event, 2 new (claimed now, or claimed earlier by this very event).
JUDGE = """
local ttl = ARGV[1]
local answers = {}
for i = 1, #ARGV - 1 do
  local seen, content, event = KEYS[2 * i - 1], KEYS[2 * i], ARGV[i + 1]
  if redis.call('EXISTS', seen) == 1 then
    answers[i] = 0
  elseif redis.call('SET', content, event, 'NX', 'EX', ttl) or redis.call('GET', content) == event then
    answers[i] = 2
  else
    answers[i] = 1
  end
end
return answers
"""
REMEMBER = """
for i, key in ipairs(KEYS) do
  redis.call('SET', key, '1', 'EX', ARGV[1])
end
return #KEYS
"""
ANSWERS = {0: Verdict.EVENT_ID, 1: Verdict.CONTENT, 2: Verdict.NEW}


class RedisSeenEvents:
    def __init__(self, redis: Redis, namespace: str, ttl_seconds: int) -> None:
        self.namespace = namespace.rstrip(".") or "default"  # the topic prefix: one set per deployment's stream
        self.ttl_seconds = ttl_seconds
        self._judge = redis.register_script(JUDGE)
        self._remember = redis.register_script(REMEMBER)

    def _seen_key(self, event_id: str) -> str:
        return redis_key("clean", self.namespace, "seen", event_id)

    def _content_key(self, fingerprint: str) -> str:
        return redis_key("clean", self.namespace, "content", fingerprint)

    async def judge(self, candidates: Sequence[Candidate]) -> list[Verdict]:
        firsts = first_of_each_event(candidates)
        if not firsts:
            return []
        keys = [
            key
            for p in firsts
            for key in (self._seen_key(candidates[p].event_id), self._content_key(candidates[p].fingerprint))
        ]
        answers = await self._judge(keys=keys, args=[self.ttl_seconds, *(candidates[p].event_id for p in firsts)])
        return verdicts(candidates, {p: ANSWERS[int(a)] for p, a in zip(firsts, answers, strict=True)})

    async def remember(self, event_ids: Sequence[str]) -> None:
        if event_ids:
            await self._remember(keys=[self._seen_key(e) for e in event_ids], args=[self.ttl_seconds])
