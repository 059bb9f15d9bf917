"""Rest-hook delivery on fakes of the endpoint and the broker, with a clock the test moves: every result scheduled
durably before the batch returns, retried until the endpoint answers, a failing endpoint probed once at a time and
never holding up another hospital's, dead-lettered with an actionable reason once the budget is spent, and the
subscription routes behind their scope."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from aiokafka import ConsumerRecord
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.riskassessment import RiskAssessment

from services.report.adapters.file_deliveries import FileDeliveryQueue
from services.report.adapters.file_store import FileReportStore
from services.report.adapters.file_subscriptions import FileSubscriptionStore
from services.report.adapters.registry_models import RegistryModels
from services.report.adapters.rest_hook import RestHookSender
from services.report.delivery import (
    DEADLETTER_REASON,
    SUBSCRIPTION_HEADER,
    DeliverySweeper,
    ScheduleDeliveries,
)
from services.report.handlers import Reporter
from services.report.metrics import ReportMetrics
from services.report.ports import Attempt
from services.report.routes import ReportRoutes
from services.report.subscription_routes import SubscriptionRoutes
from services.report.subscriptions import PARALLEL_PER_SUBSCRIPTION, TOPIC, StoredSubscription
from shared.access import refusal_event
from shared.auth import SCOPE_PREDICT, SCOPE_SUBSCRIBE, Gate, refusal_response
from shared.http import HttpApp, Refused, Request, Response
from shared.links import LinkSigner
from shared.metrics import ServiceMetrics
from shared.schemas.audit import AccessEvent
from shared.schemas.reports import ReportMessage
from shared.settings import Settings
from shared.tasks import load_tasks
from shared.topics import decode_headers
from tests.support.factories.report import fused_for, record_from
from tests.support.fakes import RecordingDeadLetters, handled
from tests.support.identity import local_identity
from tests.unit.report.conftest import SITES

WHEN = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)
BASE = "http://report.test"
T0 = 1_800_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


class Endpoints:
    """The receivers: ``up``, ``down`` (no connection) or ``hang`` (answers when released), per endpoint."""

    def __init__(self) -> None:
        self.state: dict[str, str] = {}
        self.received: dict[str, list[dict[str, Any]]] = {}
        self.headers: list[list[str]] = []
        self.tries: dict[str, int] = {}
        self.release = asyncio.Event()

    async def post(self, endpoint: str, headers: list[str], body: bytes) -> Attempt:
        self.tries[endpoint] = self.tries.get(endpoint, 0) + 1
        state = self.state.get(endpoint, "up")
        if state == "hang":
            await self.release.wait()
        if state == "down":
            return Attempt(False, "refused", "cannot connect (connection refused or no route)", 0.001)
        self.headers.append(list(headers))
        self.received.setdefault(endpoint, []).append(json.loads(body))
        return Attempt(True, "ok", "answered 200", 0.002)


def subscription(hospital: str, endpoint: str, created: float = T0 - 60, **changes: Any) -> StoredSubscription:
    return StoredSubscription(
        id=f"sub-{hospital}",
        hospital=hospital,
        client_id=f"{hospital}-backend",
        created_at=datetime.fromtimestamp(created, UTC),
        endpoint=endpoint,
        headers=["Authorization: Bearer secret"],
        reason="test",
        **changes,
    )


class Rig:
    def __init__(self, settings: Settings, budget: float = 600.0) -> None:
        self.clock = Clock()
        self.store = FileReportStore.under(settings)
        self.metrics = ReportMetrics(ServiceMetrics("report").registry)
        self.reporter = Reporter(load_tasks(), RegistryModels(settings), self.store, self.metrics, BASE)
        self.subscriptions = FileSubscriptionStore.under(settings)
        self.queue = FileDeliveryQueue.under(settings)
        self.endpoints = Endpoints()
        self.deadletters = RecordingDeadLetters()
        self.sweeper = DeliverySweeper(
            self.queue,
            self.subscriptions,
            self.endpoints,
            self.deadletters,
            self.metrics,
            BASE,
            budget_seconds=budget,
            timeout_seconds=5.0,
            clock=self.clock,
        )
        self.schedule = ScheduleDeliveries(self.subscriptions, self.queue, self.store, self.sweeper.wake, self.clock)
        self.offset = 0

    def report(self, hospital: str, index: int) -> tuple[ReportMessage, ConsumerRecord]:
        made = self.reporter.report(fused_for(record_from(hospital, index), SITES), WHEN)
        return made, self.record(made)

    def record(self, made: ReportMessage, headers: list[tuple[str, bytes]] | None = None) -> ConsumerRecord:
        self.offset += 1
        value = made.model_dump_json().encode()
        return ConsumerRecord(
            "aimass.reports",
            0,
            self.offset,
            int(self.clock() * 1000),
            0,
            made.patient.encode(),
            value,
            None,
            len(made.patient),
            len(value),
            headers or [("ce_id", made.report_id.encode())],
        )

    async def sweep(self, seconds: float = 0.0) -> int:
        self.clock.now += seconds
        started = await self.sweeper.sweep_once()
        await self.sweeper.drain()
        return started

    def counted(self, outcome: str, hospital: str = "cleveland") -> float:
        return self.metrics.deliveries.labels(hospital, outcome)._value.get()


@pytest.fixture
def rig(fresh_settings: Settings) -> Rig:
    return Rig(fresh_settings)


async def test_each_report_of_a_subscribed_hospital_is_scheduled_durably_then_delivered(rig: Rig) -> None:
    rig.subscriptions.save(subscription("cleveland", "https://ehr.cleveland/hook"))
    rig.subscriptions.save(subscription("hungary", "https://ehr.hungary/hook"))
    made = [rig.report("cleveland", i) for i in (1, 2)] + [rig.report("switzerland", 1)]
    await handled(rig.schedule, [record for _, record in made], ReportMessage)
    assert rig.queue.pending() == 2  # on disk before the batch returned; switzerland has no subscriber
    assert await rig.sweep() == 2
    received = rig.endpoints.received["https://ehr.cleveland/hook"]
    assert sorted(b["entry"][1]["resource"]["id"] for b in received) == sorted(m.report_id for m, _ in made[:2])
    for bundle in received:
        Bundle.model_validate(bundle)
        RiskAssessment.model_validate(bundle["entry"][1]["resource"])
    numbers = sorted(int(b["entry"][0]["resource"]["parameter"][5]["part"][0]["valueString"]) for b in received)
    assert numbers == [1, 2]
    assert rig.endpoints.headers == [["Authorization: Bearer secret"]] * 2
    assert "https://ehr.hungary/hook" not in rig.endpoints.received and rig.queue.pending() == 0
    assert rig.counted("delivered") == 2


async def test_a_subscription_gets_only_its_task_only_what_was_published_after_it_and_a_replay_only_for_it(
    rig: Rig,
) -> None:
    rig.subscriptions.save(subscription("cleveland", "https://a/hook", created=T0 + 10))
    other = subscription("cleveland", "https://b/hook").model_copy(update={"id": "sub-other"})
    rig.subscriptions.save(other)
    old, record = rig.report("cleveland", 1)  # published at T0: before sub-cleveland, after sub-other
    await handled(rig.schedule, [record], ReportMessage)
    await rig.sweep()
    assert "https://a/hook" not in rig.endpoints.received and len(rig.endpoints.received["https://b/hook"]) == 1
    replayed = rig.record(old, [("ce_id", old.report_id.encode()), (SUBSCRIPTION_HEADER, b"sub-cleveland")])
    await handled(rig.schedule, [replayed], ReportMessage)
    await rig.sweep()
    assert len(rig.endpoints.received["https://a/hook"]) == 1 and len(rig.endpoints.received["https://b/hook"]) == 1


async def test_an_endpoint_that_is_down_is_probed_once_at_a_time_and_gets_everything_when_it_is_back(
    rig: Rig,
) -> None:
    endpoint = "https://ehr.cleveland/hook"
    rig.subscriptions.save(subscription("cleveland", endpoint))
    rig.endpoints.state[endpoint] = "down"
    made = [rig.report("cleveland", i) for i in range(1, 7)]
    await handled(rig.schedule, [record for _, record in made], ReportMessage)
    await rig.sweep()
    # Up to its share tried at once, until the first failure told the sweeper the endpoint is down.
    assert 1 <= rig.endpoints.tries[endpoint] <= PARALLEL_PER_SUBSCRIPTION
    for _ in range(30):  # 30 s down, swept every second
        await rig.sweep(1.0)
    # After the first failures: one probe at a time, 1, 2, 4, 8, 16 s apart -- not six deliveries every second.
    assert rig.endpoints.tries[endpoint] <= PARALLEL_PER_SUBSCRIPTION + 6
    assert rig.metrics.deliveries_pending._value.get() == 6
    rig.endpoints.state[endpoint] = "up"
    for _ in range(31):  # the next probe comes at most 30 s later
        await rig.sweep(1.0)
    ids = sorted(b["entry"][1]["resource"]["id"] for b in rig.endpoints.received[endpoint])
    assert ids == sorted(m.report_id for m, _ in made) and rig.queue.pending() == 0
    assert rig.metrics.delivery_attempts.labels("refused")._value.get() >= 5
    assert rig.deadletters.letters == []


async def test_a_hanging_endpoint_does_not_hold_up_another_hospital_s_deliveries(rig: Rig) -> None:
    rig.subscriptions.save(subscription("cleveland", "https://slow/hook"))
    rig.subscriptions.save(subscription("hungary", "https://fast/hook"))
    rig.endpoints.state["https://slow/hook"] = "hang"
    made = [rig.report("cleveland", i) for i in range(1, 9)] + [rig.report("hungary", i) for i in range(1, 3)]
    await handled(rig.schedule, [record for _, record in made], ReportMessage)
    await rig.sweeper.sweep_once()
    await asyncio.sleep(0.05)
    assert len(rig.endpoints.received["https://fast/hook"]) == 2  # while cleveland's endpoint hangs
    assert rig.endpoints.tries["https://slow/hook"] == PARALLEL_PER_SUBSCRIPTION  # at most its share of slots
    rig.endpoints.release.set()
    await rig.sweeper.drain()


async def test_when_the_budget_is_spent_the_report_record_is_dead_lettered_with_what_to_do(
    fresh_settings: Settings,
) -> None:
    rig = Rig(fresh_settings, budget=3.0)
    endpoint = "https://ehr.cleveland/hook"
    rig.subscriptions.save(subscription("cleveland", endpoint))
    rig.endpoints.state[endpoint] = "down"
    made, record = rig.report("cleveland", 1)
    await handled(rig.schedule, [record], ReportMessage)
    for _ in range(8):
        await rig.sweep(0.5)
    [letter] = rig.deadletters.letters
    assert letter.reason_class == DEADLETTER_REASON and letter.record.value == record.value
    assert letter.record.key == record.key and letter.record.offset == record.offset
    assert decode_headers(letter.record.headers)[SUBSCRIPTION_HEADER] == "sub-cleveland"
    assert letter.reason.startswith(f"delivery to {endpoint} for subscription sub-cleveland failed ")
    assert (
        "over 3 s: cannot connect" in letter.reason
        and "aimass replay --service report --reason delivery" in letter.reason
    )
    assert rig.queue.pending() == 0 and rig.counted("deadlettered") == 1
    failed = rig.subscriptions.get("cleveland", "sub-cleveland")
    assert failed is not None and failed.status == "error" and failed.error == letter.reason
    # The dead letter replayed once the endpoint is fixed: delivered, and the subscription active again.
    rig.endpoints.state[endpoint] = "up"
    await handled(rig.schedule, [rig.record(made, list(letter.record.headers))], ReportMessage)
    await rig.sweep(0.1)
    assert [b["entry"][1]["resource"]["id"] for b in rig.endpoints.received[endpoint]] == [made.report_id]
    assert rig.subscriptions.get("cleveland", "sub-cleveland").status == "active"  # type: ignore[union-attr]


async def test_a_dead_letter_the_broker_does_not_take_keeps_the_delivery(fresh_settings: Settings) -> None:
    rig = Rig(fresh_settings, budget=1.0)
    rig.deadletters.acks.failures = 1
    rig.subscriptions.save(subscription("cleveland", "https://x/hook"))
    rig.endpoints.state["https://x/hook"] = "down"
    _, record = rig.report("cleveland", 1)
    await handled(rig.schedule, [record], ReportMessage)
    await rig.sweep()
    await rig.sweep(2.0)  # budget spent, the dead letter refused: the claim stays, to run out
    assert rig.deadletters.letters == [] and rig.queue.pending() == 1
    await rig.sweep(60.0)  # the lease ran out: released, given up again, and this time taken
    await rig.sweep(0.0)
    assert len(rig.deadletters.letters) == 1 and rig.queue.pending() == 0


async def test_a_deleted_subscription_s_pending_deliveries_are_dropped(rig: Rig) -> None:
    rig.subscriptions.save(subscription("cleveland", "https://x/hook"))
    _, record = rig.report("cleveland", 1)
    await handled(rig.schedule, [record], ReportMessage)
    rig.subscriptions.delete("cleveland", "sub-cleveland")
    await rig.sweep()
    assert rig.endpoints.tries == {} and rig.queue.pending() == 0 and rig.counted("cancelled") == 1


async def test_the_sender_classifies_each_failure_and_sends_the_subscription_s_headers() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.host == "refused":
            raise httpx.ConnectError("refused", request=request)
        if request.url.host == "slow":
            raise httpx.ReadTimeout("slow", request=request)
        if request.url.host == "moved":
            return httpx.Response(302, headers={"location": "https://elsewhere/"})
        return httpx.Response(500 if request.url.host == "broken" else 200)

    sender = RestHookSender(2.0, transport=httpx.MockTransport(answer))
    try:
        ok = await sender.post("https://ok/h", ["Authorization: Bearer t", "X-Site: a:b"], b"{}")
        assert ok.ok and seen[0].headers["authorization"] == "Bearer t" and seen[0].headers["x-site"] == "a:b"
        assert seen[0].headers["content-type"] == "application/fhir+json"
        results = [await sender.post(f"https://{h}/h", [], b"{}") for h in ("refused", "slow", "broken", "moved")]
        assert [(r.ok, r.result) for r in results] == [
            (False, "refused"),
            (False, "timeout"),
            (False, "status"),
            (False, "status"),  # a redirect is not followed: the hospital fixes its endpoint
        ]
        assert results[1].detail == "no answer within 2 s" and results[2].detail == "answered 500"
    finally:
        await sender.close()


async def test_the_whole_post_is_bounded_by_the_time_limit_not_only_each_read() -> None:
    """An endpoint that answers slowly but steadily never trips httpx's per-read timeout; the try still ends at the
    limit, well inside its claim's lease (else another replica would send it again)."""

    async def trickle(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(5.0)
        return httpx.Response(200)

    sender = RestHookSender(0.2, transport=httpx.MockTransport(trickle))
    try:
        attempt = await sender.post("https://slow/h", [], b"{}")
    finally:
        await sender.close()
    assert (attempt.ok, attempt.result) == (False, "timeout") and attempt.seconds < 1.0


# -- the routes ---------------------------------------------------------------------------------------------------
class Edge:
    def __init__(self, settings: Settings) -> None:
        self.events: list[AccessEvent] = []
        tasks = load_tasks()
        self.store = FileReportStore.under(settings)
        self.reporter = Reporter(
            tasks, RegistryModels(settings), self.store, ReportMetrics(ServiceMetrics("report").registry), BASE
        )
        self.subscriptions = FileSubscriptionStore.under(settings)
        gate = Gate(local_identity().verifier())
        hooks = SubscriptionRoutes(tasks, self.subscriptions, self.record, BASE)
        reports = ReportRoutes(self.store, self.reporter.pdf, self.record, LinkSigner(b"k" * 32, 60), BASE)
        subscribe = gate.scoped(SCOPE_SUBSCRIBE)
        self.http = HttpApp(None)  # type: ignore[arg-type]  # no lifespan: no broker in a unit test
        self.http.refused = self.refused
        self.http.post("/fhir/Subscription", hooks.create, guard=subscribe)
        self.http.get("/fhir/Subscription", hooks.search, guard=subscribe)
        self.http.get("/fhir/Subscription/{subscription_id}", hooks.read, guard=subscribe)
        self.http.route(("DELETE",), "/fhir/Subscription/{subscription_id}", hooks.delete, guard=subscribe)
        self.http.get("/fhir/RiskAssessment/{report_id}", reports.risk_assessment, guard=gate.scoped(SCOPE_PREDICT))
        self.client = httpx.AsyncClient(transport=httpx.ASGITransport(self.http), base_url=BASE)

    async def record(self, event: AccessEvent) -> None:
        self.events.append(event)

    async def refused(self, request: Request, refused: Refused) -> Response:
        await self.record(refusal_event("report", request, refused))
        return refusal_response(request, refused)


@pytest.fixture
async def edge(fresh_settings: Settings):
    made = Edge(fresh_settings)
    yield made
    await made.client.aclose()


def as_(hospital: str | None) -> dict[str, str]:
    return local_identity().headers(hospital)


SUBSCRIPTION = {
    "resourceType": "Subscription",
    "status": "requested",
    "reason": "results to our EHR",
    "criteria": TOPIC,
    "channel": {
        "type": "rest-hook",
        "endpoint": "https://ehr.example/hook",
        "payload": "application/fhir+json",
        "header": ["Authorization: Bearer ehr-secret"],
    },
}


async def test_a_hospital_creates_lists_reads_and_deletes_its_own_subscriptions_only(edge: Edge) -> None:
    created = await edge.client.post("/fhir/Subscription", json=SUBSCRIPTION, headers=as_("cleveland"))
    assert created.status_code == 201 and created.headers["content-type"] == "application/fhir+json"
    body = created.json()
    assert body["status"] == "active" and created.headers["location"] == f"{BASE}/fhir/Subscription/{body['id']}"
    assert "ehr-secret" not in created.text and body["channel"]["header"] == ["Authorization: ***"]
    kept = edge.subscriptions.get("cleveland", body["id"])
    assert kept is not None and kept.headers == ["Authorization: Bearer ehr-secret"]  # kept, to be sent
    listed = (await edge.client.get("/fhir/Subscription", headers=as_("cleveland"))).json()
    assert listed["resourceType"] == "Bundle" and [e["resource"]["id"] for e in listed["entry"]] == [body["id"]]
    assert (await edge.client.get("/fhir/Subscription", headers=as_("hungary"))).json()["total"] == 0
    path = f"/fhir/Subscription/{body['id']}"
    assert (await edge.client.get(path, headers=as_("cleveland"))).json()["id"] == body["id"]
    assert (await edge.client.get(path, headers=as_("hungary"))).status_code == 404
    assert (await edge.client.delete(path, headers=as_("hungary"))).status_code == 404
    assert (await edge.client.delete(path, headers=as_("cleveland"))).status_code == 204
    assert (await edge.client.get(path, headers=as_("cleveland"))).status_code == 404
    assert [(e.action, e.outcome) for e in edge.events] == [("C", "0"), ("E", "0"), ("E", "0"), ("R", "0"), ("D", "0")]
    assert {e.agent[0].who.identifier.value for e in edge.events} == {"cleveland-backend", "hungary-backend"}


async def test_subscribing_needs_the_scope_and_a_hospital_and_a_bad_subscription_says_what_to_change(
    edge: Edge,
) -> None:
    assert (await edge.client.post("/fhir/Subscription", json=SUBSCRIPTION)).status_code == 401
    operator = await edge.client.post("/fhir/Subscription", json=SUBSCRIPTION, headers=as_(None))
    assert operator.status_code == 403 and operator.json()["resourceType"] == "OperationOutcome"
    narrow = local_identity().headers("cleveland", "system/DiagnosticReport.read")
    assert (await edge.client.post("/fhir/Subscription", json=SUBSCRIPTION, headers=narrow)).status_code == 403
    bad = {**SUBSCRIPTION, "channel": {**SUBSCRIPTION["channel"], "endpoint": "file:///etc/passwd"}}  # type: ignore[dict-item]
    refused = await edge.client.post("/fhir/Subscription", json=bad, headers=as_("cleveland"))
    assert refused.status_code == 400 and "https in production" in refused.json()["issue"][0]["diagnostics"]
    assert edge.subscriptions.of_hospital("cleveland") == []


async def test_a_notification_s_focus_reads_back_with_a_token_of_the_patient_s_hospital(edge: Edge) -> None:
    made = edge.reporter.report(fused_for(record_from("cleveland", 1), SITES), WHEN)
    path = f"/fhir/RiskAssessment/{made.report_id}"
    read = await edge.client.get(path, headers=as_("cleveland"))
    assert read.status_code == 200 and read.json() == made.risk_assessment
    assert (await edge.client.get(path, headers=as_("hungary"))).status_code == 403
    assert (await edge.client.get("/fhir/RiskAssessment/nothing", headers=as_("cleveland"))).status_code == 404
    [event, refusal] = edge.events
    assert (
        event.entity[0].what.reference == path.removeprefix("/fhir/")
        and event.entity[1].what.identifier.value == made.patient
    )
    assert refusal.outcome == "4"
