"""Rest-hook delivery of each result to the hospital's subscribers: a consumer that schedules, a sweeper that sends.

``ScheduleDeliveries`` reads ``reports`` in its own consumer group: for each report of a hospital with subscriptions
it hands out the subscription's next event number and writes one pending delivery per subscription to the due-set
(``DeliveryQueue``), durably, before the batch returns and its offsets are committed. Nothing is sent on the
consumer's path: an endpoint that hangs cannot hold up the stream, nor any other hospital.

``DeliverySweeper`` runs beside it in every replica: it claims due deliveries (a claim is atomic: one replica tries
each), POSTs each notification with the subscription's headers within ``AIMASS_REPORT_DELIVERY_TIMEOUT_SECONDS``, in
parallel up to ``slots`` and ``PARALLEL_PER_SUBSCRIPTION`` per endpoint. A failure (no connection, timeout, non-2xx)
is tried again after 1, 2, 4 ... 30 s; an endpoint that fails gets a single probe at a time until it answers, then
everything waiting for it goes out. Once ``AIMASS_REPORT_DELIVERY_RETRY_SECONDS`` have passed since the delivery was
first due, the ``reports`` record is dead-lettered with a reason that names the endpoint, the subscription, the tries
and what to do; ``aimass replay`` puts it back on ``reports`` with the subscription in its headers
(``SUBSCRIPTION_HEADER``), and this consumer schedules it again for that subscription only.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from aiokafka import ConsumerRecord

from services.report.metrics import ReportMetrics
from services.report.ports import Claimed, DeliveryQueue, DueEntry, ReportStore, RestHook, SubscriptionStore
from services.report.subscriptions import (
    EndpointHealth,
    PendingDelivery,
    after_failure,
    give_up_reason,
    notification,
    wants,
)
from shared.events import confirmed
from shared.intake import Batch
from shared.ports import DeadLetterSink
from shared.schemas.reports import ReportMessage
from shared.topics import decode_headers

log = logging.getLogger("aimass.report.delivery")

SUBSCRIPTION_HEADER = "aimass-subscription"
"""On a dead-lettered ``reports`` record (and so on its replay): the one subscription it is to be delivered to."""
DEADLETTER_REASON = "delivery_failed"
SWEEP_INTERVAL_SECONDS = 0.5
SLOTS = 32
LEASE_MARGIN_SECONDS = 30.0
STOP_GRACE_SECONDS = 3.0


@dataclass
class ScheduleDeliveries:
    """The ``reports`` subscriber: every result for every subscription that wants it, durably in the due-set."""

    subscriptions: SubscriptionStore
    queue: DeliveryQueue
    store: ReportStore
    wake: Callable[[], None] = lambda: None
    clock: Callable[[], float] = time.time

    async def __call__(self, batch: Batch[ReportMessage]) -> None:
        items = [(item.record, item.event) for item in batch]
        if await asyncio.to_thread(self.schedule, items):
            self.wake()

    def schedule(self, items: Sequence[tuple[ConsumerRecord, ReportMessage]]) -> int:
        now = self.clock()
        moment = datetime.fromtimestamp(now, UTC)
        pending = []
        for record, message in items:
            view = self.store.view(message.report_id)
            if view is None:  # not a report of this deployment's store: no hospital to deliver it for
                log.warning("a report on the topic is not in the store; not delivered", extra={"event": "unknown"})
                continue
            headers = decode_headers(record.headers)
            target = headers.get(SUBSCRIPTION_HEADER)
            for subscription in self.subscriptions.of_hospital(view.hospital):
                if target is not None:
                    if subscription.id != target:  # a replayed dead letter: for the subscription that missed it
                        continue
                elif not wants(subscription, message, record.timestamp, moment):
                    continue
                number = self.subscriptions.next_event(view.hospital, subscription.id)
                pending.append(
                    PendingDelivery(
                        subscription_id=subscription.id,
                        hospital=view.hospital,
                        report_id=message.report_id,
                        event_number=number,
                        first_at=now,
                        due_at=now,
                        topic=record.topic,
                        partition=record.partition,
                        offset=record.offset,
                        timestamp_ms=record.timestamp,
                        key=record.key.decode("utf-8", "replace") if record.key else None,
                        value=(record.value or b"").decode("utf-8"),
                        headers=[(k, v) for k, v in headers.items() if k != SUBSCRIPTION_HEADER],
                    )
                )
        self.queue.schedule(pending)
        return len(pending)


@dataclass
class DeliverySweeper:
    queue: DeliveryQueue
    subscriptions: SubscriptionStore
    sender: RestHook
    deadletters: DeadLetterSink
    metrics: ReportMetrics
    base_url: str
    budget_seconds: float
    timeout_seconds: float
    clock: Callable[[], float] = time.time
    interval: float = SWEEP_INTERVAL_SECONDS
    slots: int = SLOTS
    _health: dict[str, EndpointHealth] = field(default_factory=dict)
    _last_error: dict[str, str] = field(default_factory=dict)
    _in_flight: Counter[str] = field(default_factory=Counter)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _stopping: asyncio.Event = field(default_factory=asyncio.Event)
    _loop: asyncio.Task[None] | None = None

    def wake(self) -> None:
        """New deliveries are due: sweep now rather than at the next interval (from the event loop)."""
        self._wake.set()

    def health(self, subscription_id: str) -> EndpointHealth:
        return self._health.setdefault(subscription_id, EndpointHealth())

    async def sweep_once(self) -> int:
        """Start a try of every due delivery that a slot and its endpoint's health allow (and the last try, or the
        dead letter, of each whose budget is spent); the number started."""
        now = self.clock()
        await asyncio.to_thread(self.queue.release_expired, now)
        started = 0
        for entry in await asyncio.to_thread(self.queue.due, now):
            if self._stopping.is_set():
                break
            health = self.health(entry.subscription_id)
            allowed = health.allows(self._in_flight[entry.subscription_id], now) and len(self._tasks) < self.slots
            # Its budget spent while its endpoint is failing (and no probe due): dead-lettered without a try.
            given_up = not allowed and health.failing and now - entry.first_at >= self.budget_seconds
            if not allowed and not given_up:
                continue
            probe = health.failing  # decided now: the claim below awaits, and other tries may fail meanwhile
            claimed = await asyncio.to_thread(
                self.queue.claim, entry, now + self.timeout_seconds + LEASE_MARGIN_SECONDS
            )
            if claimed is None:  # another replica has it
                continue
            self._start(entry, claimed, try_it=allowed, probe=probe)
            started += 1
        self.metrics.deliveries_pending.set(await asyncio.to_thread(self.queue.pending))
        return started

    def _start(self, entry: DueEntry, claimed: Claimed, try_it: bool, probe: bool) -> None:
        self._in_flight[entry.subscription_id] += 1
        task = asyncio.create_task(self._deliver(claimed, try_it, probe), name=f"delivery-{entry.report_id}")
        self._tasks.add(task)

        def finished(done: asyncio.Task[None]) -> None:
            self._tasks.discard(done)
            self._in_flight[entry.subscription_id] -= 1
            if not self._in_flight[entry.subscription_id]:
                del self._in_flight[entry.subscription_id]
            self._wake.set()  # a slot is free

        task.add_done_callback(finished)

    async def _deliver(self, claimed: Claimed, try_it: bool, probe: bool) -> None:
        """One try (a probe when the endpoint was failing as it started); then done, retry or dead letter. A raise
        (disk, broker) leaves the claim to run out: the delivery is tried again then."""
        delivery = claimed.delivery
        try:
            subscription = await asyncio.to_thread(self.subscriptions.get, delivery.hospital, delivery.subscription_id)
            if subscription is None:  # deleted meanwhile: nobody to deliver to
                await asyncio.to_thread(self.queue.done, claimed)
                self.metrics.delivered(delivery.hospital, "cancelled")
                return
            health = self.health(subscription.id)
            if try_it:
                message = ReportMessage.model_validate_json(delivery.value)
                moment = datetime.fromtimestamp(self.clock(), UTC)
                bundle = await asyncio.to_thread(
                    notification, subscription, message, delivery.event_number, self.base_url, moment
                )
                attempt = await self.sender.post(
                    subscription.endpoint, subscription.headers, json.dumps(bundle).encode()
                )
                self.metrics.delivery_attempts.labels(attempt.result).inc()
                self.metrics.delivery_seconds.observe(attempt.seconds)
                if attempt.ok:
                    health.succeeded()
                    await asyncio.to_thread(self.queue.done, claimed)
                    self.metrics.delivered(delivery.hospital, "delivered")
                    if subscription.status != "active":
                        await asyncio.to_thread(
                            self.subscriptions.set_status, delivery.hospital, subscription.id, "active", None
                        )
                    return
                now = self.clock()
                health.failed(now, probe)
                self._last_error[subscription.id] = attempt.detail
                delivery = delivery.model_copy(update={"attempts": delivery.attempts + 1, "last_error": attempt.detail})
                decision = after_failure(delivery.first_at, delivery.attempts, now, self.budget_seconds)
                if decision.retry_at is not None:
                    await asyncio.to_thread(
                        self.queue.retry, claimed, delivery.model_copy(update={"due_at": decision.retry_at})
                    )
                    return
            await self._give_up(claimed, delivery, subscription.endpoint)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("a delivery failed on the platform's side; it is tried again when its claim runs out")

    async def _give_up(self, claimed: Claimed, delivery: PendingDelivery, endpoint: str) -> None:
        last = delivery.last_error or self._last_error.get(delivery.subscription_id, "the endpoint kept failing")
        reason = give_up_reason(
            endpoint, delivery.subscription_id, delivery.attempts, self.clock() - delivery.first_at, last
        )
        await confirmed([await self.deadletters.enqueue(dead_letter_record(delivery), reason, DEADLETTER_REASON)])
        await asyncio.to_thread(self.queue.done, claimed)
        self.metrics.delivered(delivery.hospital, "deadlettered")
        await asyncio.to_thread(
            self.subscriptions.set_status, delivery.hospital, delivery.subscription_id, "error", reason
        )
        log.warning(
            "a delivery was dead-lettered",
            extra={"event": "delivery_deadlettered", "attempts": delivery.attempts},
        )

    async def run(self) -> None:
        while not self._stopping.is_set():
            self._wake.clear()
            try:
                await self.sweep_once()
            except Exception:
                log.exception("delivery sweep failed; retrying")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval)

    async def start(self) -> None:
        self._stopping.clear()
        self._loop = asyncio.create_task(self.run(), name="report-delivery-sweeper")

    async def drain(self) -> None:
        """Wait for the tries under way (tests; shutdown)."""
        while self._tasks:
            await asyncio.wait(set(self._tasks))

    async def stop(self) -> None:
        """End the loop, give the tries under way a moment, and cancel the rest: their claims run out and another
        replica (or this one after a restart) tries them again."""
        loop, self._loop = self._loop, None
        self._stopping.set()
        self._wake.set()
        if loop is not None:
            await asyncio.wait({loop}, timeout=STOP_GRACE_SECONDS)
            loop.cancel()
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=STOP_GRACE_SECONDS)
        for task in list(self._tasks):
            task.cancel()


def dead_letter_record(delivery: PendingDelivery) -> ConsumerRecord:
    """The ``reports`` record as it was consumed, with the subscription it is still owed to in its headers."""
    value = delivery.value.encode()
    key = delivery.key.encode() if delivery.key is not None else None
    headers = [(k, v.encode()) for k, v in delivery.headers] + [
        (SUBSCRIPTION_HEADER, delivery.subscription_id.encode())
    ]
    return ConsumerRecord(
        topic=delivery.topic,
        partition=delivery.partition,
        offset=delivery.offset,
        timestamp=delivery.timestamp_ms,
        timestamp_type=0,
        key=key,
        value=value,
        checksum=None,
        serialized_key_size=len(key) if key else -1,
        serialized_value_size=len(value),
        headers=headers,
    )
