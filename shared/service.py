"""``Service``: the wiring every AI Mass service shares — broker, Redis, dead letters, health and metrics.

A service's ``app.py`` creates one, declares its publishers and subscribers on it, and returns it;
``aimass run <name>`` serves it with uvicorn on the service's port.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import uvicorn
from faststream.asgi import AsgiFastStream
from faststream.kafka.annotations import KafkaMessage
from pydantic import BaseModel

from shared.access import refusal_event
from shared.asyncapi import PublishedEvent, service_specification
from shared.auth import SCOPE_OPS, Gate, TokenVerifier, refusal_response
from shared.broker import consumer_options, ensure_topics, make_broker, without_idle_pause
from shared.events import DeadLetters, EventPublisher
from shared.http import HttpApp, Refused, Request, Response
from shared.intake import Batch, EventCheck, Intake, Reader
from shared.lag import ConsumerLagExporter
from shared.logging import configure_logging
from shared.metrics import ServiceMetrics
from shared.producers import ProducerWatch, broker_producer, renew_broker_producer
from shared.redis import make_redis
from shared.schemas.audit import AccessEvent
from shared.settings import Settings, get_settings
from shared.topics import Topic, group_id, topic_name

ReadinessCheck = Callable[[], Awaitable[bool]]
Hook = Callable[[], Awaitable[None]]
BatchHandler = Callable[[Batch[Any]], Awaitable[None]]
PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
CHECK_TIMEOUT_SECONDS = 2.0
STARTUP_FAILED = 3
"""The exit status of a service whose start-up failed (gunicorn's and uvicorn's own)."""


class Service:
    def __init__(self, name: str, settings: Settings | None = None) -> None:
        self.name = name
        self.settings = settings or get_settings()
        self.log = logging.getLogger(f"aimass.{name}")
        self.metrics = ServiceMetrics(name)
        self.broker = make_broker(self.settings, name, self.metrics)
        self.redis = make_redis(self.settings)
        self.deadletters = DeadLetters(self.broker, self.settings, name, self.metrics)
        self.intake = Intake(self.deadletters, self.metrics)
        self.producers = ProducerWatch(name, self.metrics.registry)
        self.producers.watch("broker", lambda: broker_producer(self.broker), lambda: renew_broker_producer(self.broker))
        self.checks: dict[str, ReadinessCheck] = {"kafka": self._kafka_answers, "redis": self._redis_answers}
        self.details: dict[str, Callable[[], object]] = {}
        self._startup: list[Hook] = [self._create_topics, self._connect_checked_producer]
        self._shutdown: list[Hook] = [self.producers.stop, self._stop_lag, self._close_redis]
        self._consumed: list[str] = []
        self.published: list[PublishedEvent] = []
        self._asyncapi: tuple[bytes, bytes] | None = None
        self._lag: ConsumerLagExporter | None = None
        self.app = AsgiFastStream(self.broker, on_startup=[self._run_startup], after_shutdown=[self._run_shutdown])
        self.app.after_startup(self._start_lag)
        self.app.after_startup(self.producers.start)
        self.access_audit = self.publisher(
            Topic.AUDIT,
            entity="access",
            verb="audited",
            schema=AccessEvent,
            description="Every read of patient data, every refusal and every token decision, as a FHIR AuditEvent "
            "(IHE BALP): who, what, when, outcome, from where; never an identifier.",
        )
        self.gate = Gate(TokenVerifier.from_settings(self.settings))
        self.http = HttpApp(self.app)
        self.http.refused = self._refused
        self.http.get("/healthz", self._healthz, guard=None)
        self.http.get("/readyz", self._readyz, guard=self.gate.optional)
        self.http.get("/metrics", self._metrics, guard=self.gate.scoped(SCOPE_OPS))
        self.http.get("/asyncapi", self._asyncapi_yaml, guard=self.gate.authenticated)
        self.http.get("/asyncapi.json", self._asyncapi_json, guard=self.gate.authenticated)

    # -- declaration -------------------------------------------------------------------------------------------
    def topic(self, topic: Topic) -> str:
        return topic_name(topic, self.settings.topic_prefix)

    @property
    def group_id(self) -> str:
        """This service's consumer group (``shared.topics.group_id``)."""
        return group_id(self.name, self.settings.topic_prefix)

    def publisher(
        self, topic: Topic, *, entity: str, verb: str, schema: type[BaseModel], description: str = ""
    ) -> EventPublisher:
        publisher = EventPublisher(
            self.broker,
            self.settings,
            self.name,
            topic,
            entity=entity,
            verb=verb,
            schema=schema,
            description=description,
        )
        self.published.append(PublishedEvent(publisher.topic, publisher.type, schema, description))
        return publisher

    def subscriber(self, *topics: Topic | str, **options: Any) -> Any:
        """FastStream subscriber with the project's delivery defaults (see ``shared.broker``). A ``Topic`` is named
        with the deployment's prefix; a plain string is a full topic name (a hospital's input topic)."""
        names = [self.topic(t) if isinstance(t, Topic) else t for t in topics]
        self._consumed.extend(names)
        defaults = consumer_options(self.group_id, options.get("batch", False))
        return self.broker.subscriber(*names, **{**defaults, **options})

    def batch_subscriber(
        self, *topics: Topic | str, max_records: int = 500, batch_timeout_ms: int = 10, **options: Any
    ) -> Any:
        """Like ``subscriber``, but the handler gets up to ``max_records`` records at once (``message.raw_message``
        is a tuple) and the offsets are committed once per batch, after the handler returned."""
        return without_idle_pause(
            self.subscriber(*topics, batch=True, max_records=max_records, batch_timeout_ms=batch_timeout_ms, **options)
        )

    def on_startup(self, hook: Hook) -> Hook:
        self._startup.append(hook)
        return hook

    def on_shutdown(self, hook: Hook) -> Hook:
        self._shutdown.insert(0, hook)
        return hook

    # -- running -----------------------------------------------------------------------------------------------
    async def serve(self) -> None:
        configure_logging(self.name, self.settings.log_level)
        config = uvicorn.Config(
            self.http,
            host=self.settings.http_host,
            port=self.settings.port_for(self.name),
            lifespan="on",
            log_config=None,
            access_log=False,
        )
        server = uvicorn.Server(config)
        await server.serve()
        if not server.started:
            # A failed start-up (the broker refused us, a port taken) must not read as a clean exit to a supervisor;
            # uvicorn before 0.50 returns normally from it.
            raise SystemExit(STARTUP_FAILED)

    async def _run_startup(self) -> None:
        for hook in self._startup:
            await hook()
        # What start-up loaded (modules, models, code tables) lives as long as the process: kept out of the cyclic
        # collector's way, every later full collection walks only what the handlers made.
        gc.freeze()
        self.metrics.zero_faststream_series(self._consumed)
        self.log.info("started", extra={"event": "startup"})

    async def _run_shutdown(self) -> None:
        for hook in self._shutdown:
            await hook()

    async def _create_topics(self) -> None:
        await ensure_topics(self.settings)

    async def _connect_checked_producer(self) -> None:
        # Before the subscribers start: FastStream connects only once, so every publish goes through the checked one.
        await self.broker.connect()
        await renew_broker_producer(self.broker)

    def consumer_groups(self) -> dict[str, list[str]]:
        """Each consumer group of this service and the topics it reads (subscribers without a group are left out:
        they read every message and have no lag to speak of)."""
        groups: dict[str, list[str]] = {}
        for subscriber in self.broker.subscribers:
            if subscriber.group_id:
                groups.setdefault(subscriber.group_id, []).extend(subscriber.topic_names)
        return groups

    async def _start_lag(self) -> None:
        # aimass_consumer_lag for every group; a service that wired its own exporter keeps it.
        if "aimass_consumer_lag" in self.metrics.registry._names_to_collectors or not self.consumer_groups():
            return
        self._lag = ConsumerLagExporter(self.settings, self.name, self.metrics.registry, self.consumer_groups())
        await self._lag.start()

    async def _stop_lag(self) -> None:
        if self._lag is not None:
            await self._lag.stop()

    async def _close_redis(self) -> None:
        await self.redis.aclose()

    # -- health ------------------------------------------------------------------------------------------------
    async def _kafka_answers(self) -> bool:
        # A producer whose sender died cannot publish though the broker answers: down until the watch replaces it.
        return not self.producers.failed() and await self.broker.ping(timeout=CHECK_TIMEOUT_SECONDS)

    async def _redis_answers(self) -> bool:
        return bool(await self.redis.ping())

    async def readiness(self) -> dict[str, bool]:
        async def run(check: ReadinessCheck) -> bool:
            try:
                return await asyncio.wait_for(check(), CHECK_TIMEOUT_SECONDS)
            except Exception:
                return False

        names = list(self.checks)
        results = await asyncio.gather(*(run(self.checks[n]) for n in names))
        for name, ok in zip(names, results, strict=True):
            self.metrics.dependency_up.labels(self.name, name).set(1 if ok else 0)
        return dict(zip(names, results, strict=True))

    async def _healthz(self, _: Request) -> Response:
        return Response.json({"status": "alive", "service": self.name})

    async def _readyz(self, request: Request) -> Response:
        checks = await self.readiness()
        ready = all(checks.values())
        body = {
            "status": "ready" if ready else "not ready",
            "service": self.name,
            "checks": {name: "ok" if ok else "down" for name, ok in checks.items()},
        }
        if request.principal is not None and request.principal.allows(SCOPE_OPS):  # probes send no token
            body.update({name: detail() for name, detail in self.details.items()})
        return Response.json(body, 200 if ready else 503)

    async def _metrics(self, _: Request) -> Response:
        return Response(self.metrics.render(), content_type=PROMETHEUS_CONTENT_TYPE)

    # -- the trusted edge ------------------------------------------------------------------------------------------
    async def audit(self, event: AccessEvent) -> None:
        """Publish an access audit event and wait for the broker: a read that cannot be audited is not served."""
        patient = next(
            (e.what.identifier.value for e in event.entity if e.role.code == "1" and e.what.identifier), None
        )
        client = event.agent[0].who.identifier
        key = patient or (client.value if client else self.name)
        await self.access_audit.publish(event, event_id=event.id, key=key)

    async def _refused(self, request: Request, refused: Refused) -> Response:
        try:
            await self.audit(refusal_event(self.name, request, refused))
        except Exception:  # the refusal stands either way; the broker being down is on /readyz
            self.log.exception("a refusal could not be audited", extra={"path": request.path})
        return refusal_response(request, refused)

    # -- documentation ---------------------------------------------------------------------------------------
    def _asyncapi_documents(self) -> tuple[bytes, bytes]:
        # Built on first request: every publisher and subscriber is declared by then and never changes after.
        if self._asyncapi is None:
            spec = service_specification(self.name, self.broker)
            self._asyncapi = (spec.to_yaml().encode(), spec.to_json().encode())
        return self._asyncapi

    async def _asyncapi_yaml(self, _: Request) -> Response:
        return Response(self._asyncapi_documents()[0], content_type="application/yaml; charset=utf-8")

    async def _asyncapi_json(self, _: Request) -> Response:
        return Response(self._asyncapi_documents()[1], content_type="application/json")

    # -- consuming ---------------------------------------------------------------------------------------------
    def consume(
        self,
        *topics: Topic | str,
        read: Reader[Any],
        handle: BatchHandler,
        check: EventCheck[Any] | None = None,
        batch: bool = True,
        max_records: int = 500,
        batch_timeout_ms: int = 10,
        **options: Any,
    ) -> None:
        """Subscribe ``handle`` to ``topics``. Each consumed batch (one record with ``batch=False``) is read into a
        ``shared.intake.Batch`` (``read`` and ``check`` decide what is dead-lettered), handed to ``handle``, and
        confirmed after it returned; only then are the batch's offsets committed (``shared.broker``)."""
        if batch:
            subscriber = self.batch_subscriber(
                *topics, max_records=max_records, batch_timeout_ms=batch_timeout_ms, **options
            )
        else:
            subscriber = self.subscriber(*topics, **options)

        async def on_records(message: KafkaMessage) -> None:
            records = message.raw_message if batch else (message.raw_message,)
            await self.intake.handle(records, read, handle, check)

        subscriber(on_records)
