"""Rest-hook subscriptions (pure parts and their stores): what a hospital may subscribe to, the R4 backport
notification each result becomes, the retry schedule, and the due-set and subscription files replicas share."""

from __future__ import annotations

import json
import re
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.subscription import Subscription

from services.report.adapters.file_deliveries import FileDeliveryQueue
from services.report.adapters.file_subscriptions import FileSubscriptionStore
from services.report.subscriptions import (
    FILTER_CRITERIA,
    PARALLEL_PER_SUBSCRIPTION,
    PAYLOAD_CONTENT,
    STATUS_PROFILE,
    TOPIC,
    EndpointHealth,
    PendingDelivery,
    StoredSubscription,
    SubscriptionRejected,
    after_failure,
    as_fhir,
    backoff,
    give_up_reason,
    new_subscription,
    notification,
    notification_id,
    wants,
)
from shared.schemas.reports import ReportMessage
from shared.tasks import load_tasks

NOW = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)
BASE = "http://report.test"


def subscription_json(**changes: Any) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Subscription",
        "meta": {
            "profile": ["http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-subscription"]
        },
        "status": "requested",
        "reason": "heart risk results for our EHR",
        "criteria": TOPIC,
        "channel": {
            "type": "rest-hook",
            "endpoint": "https://ehr.example/hooks/aimass",
            "payload": "application/fhir+json",
            "_payload": {"extension": [{"url": PAYLOAD_CONTENT, "valueCode": "full-resource"}]},
            "header": ["Authorization: Bearer ehr-secret-123"],
        },
    }
    for key, value in changes.items():
        if key.startswith("channel."):
            resource["channel"][key.removeprefix("channel.")] = value
        else:
            resource[key] = value
    return resource


def made(**changes: Any) -> StoredSubscription:
    body = json.dumps(subscription_json(**changes)).encode()
    return new_subscription(body, load_tasks(), "cleveland", "cleveland-backend", NOW)


def message(task: str = "heart_disease", report_id: str = "r-1") -> ReportMessage:
    assessment = {
        "resourceType": "RiskAssessment",
        "id": report_id,
        "status": "final",
        "subject": {"reference": "Patient/p1"},
        "prediction": [{"probabilityDecimal": 0.4}],
    }
    return ReportMessage(
        report_id=report_id,
        record_id="rec-1",
        patient="p1",
        task=task,
        summary="s",
        risk_assessment=assessment,
        url=f"{BASE}/reports/{report_id}",
    )


def test_a_backport_subscription_is_kept_with_its_hospital_endpoint_headers_and_task() -> None:
    plain = made()
    assert plain.hospital == "cleveland" and plain.client_id == "cleveland-backend" and plain.task is None
    assert plain.endpoint == "https://ehr.example/hooks/aimass" and plain.headers == [
        "Authorization: Bearer ehr-secret-123"
    ]
    filtered = made(
        _criteria={"extension": [{"url": FILTER_CRITERIA, "valueString": "RiskAssessment?code=heart_disease"}]}
    )
    assert filtered.task == "heart_disease"
    classic = made(criteria="RiskAssessment?code=urn:aimass:task|heart_disease")
    assert classic.task == "heart_disease" and made(criteria="RiskAssessment").task is None
    assert made().id != made().id


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"channel.type": "websocket"}, "only rest-hook"),
        ({"channel.endpoint": "ftp://ehr.example/x"}, "http(s)"),
        ({"channel.endpoint": "/hooks"}, "http(s)"),
        ({"channel.payload": "application/fhir+xml"}, "application/fhir+json"),
        ({"channel._payload": {"extension": [{"url": PAYLOAD_CONTENT, "valueCode": "id-only"}]}}, "full-resource"),
        ({"channel.header": ["no colon here"]}, "Name: value"),
        ({"channel.header": ["Content-Type: text/plain"]}, "set by the platform"),
        ({"channel.header": [f"X-{n}: v" for n in range(11)]}, "at most 10"),
        ({"criteria": "Observation?code=1"}, "subscribe to"),
        ({"criteria": "RiskAssessment?code=no_such_task"}, "no task"),
        ({"criteria": "RiskAssessment?subject=Patient/1"}, "only code="),
        ({"end": "2020-01-01T00:00:00Z"}, "in the past"),
        ({"status": None}, "not a valid FHIR R4 Subscription"),
        ({"resourceType": "Patient"}, "send a FHIR R4 Subscription"),
    ],
)
def test_what_cannot_be_served_is_refused_with_what_to_change(changes: dict[str, Any], reason: str) -> None:
    with pytest.raises(SubscriptionRejected, match=re.escape(reason)):
        made(**changes)


def test_a_body_that_is_not_json_is_refused() -> None:
    with pytest.raises(SubscriptionRejected, match="not JSON"):
        new_subscription(b"{", load_tasks(), "cleveland", "c", NOW)


def test_the_stored_subscription_reads_as_a_valid_r4_subscription_with_its_secrets_masked() -> None:
    kept = made(criteria="RiskAssessment?code=heart_disease")
    shown = as_fhir(kept, BASE)
    Subscription.model_validate(shown)
    assert shown["id"] == kept.id and shown["status"] == "active" and shown["criteria"] == TOPIC
    assert shown["channel"]["header"] == ["Authorization: ***"] and "ehr-secret-123" not in json.dumps(shown)
    assert shown["_criteria"]["extension"][0]["valueString"] == "RiskAssessment?code=heart_disease"
    failing = as_fhir(kept.model_copy(update={"status": "error", "error": "delivery ... failed"}), BASE)
    assert failing["status"] == "error" and failing["error"] == "delivery ... failed"


def test_the_notification_is_a_valid_history_bundle_of_the_status_and_the_risk_assessment() -> None:
    kept = made()
    result = message()
    bundle = notification(kept, result, 7, BASE, NOW)
    Bundle.model_validate(bundle)  # the whole Bundle, resources included
    assert bundle["type"] == "history" and bundle["id"] == notification_id(kept.id, "r-1")
    status, assessment = (e["resource"] for e in bundle["entry"])
    assert status["resourceType"] == "Parameters" and status["meta"]["profile"] == [STATUS_PROFILE]
    parameters = {p["name"]: p for p in status["parameter"]}
    assert parameters["subscription"]["valueReference"]["reference"] == f"{BASE}/fhir/Subscription/{kept.id}"
    assert parameters["topic"]["valueCanonical"] == TOPIC
    assert parameters["type"]["valueCode"] == "event-notification"
    event = {p["name"]: p for p in parameters["notification-event"]["part"]}
    assert event["event-number"]["valueString"] == "7"
    assert event["focus"]["valueReference"]["reference"] == f"{BASE}/fhir/RiskAssessment/r-1"
    assert assessment == result.risk_assessment and bundle["entry"][1]["fullUrl"].endswith("/RiskAssessment/r-1")
    again = notification(kept, result, 7, BASE, NOW + timedelta(minutes=5))
    assert again["id"] == bundle["id"] and again["entry"][0]["resource"]["id"] == status["id"]  # stable: de-duplicable


def test_a_subscription_wants_its_task_published_after_it_was_made_and_before_its_end() -> None:
    made_ms = int(NOW.timestamp() * 1000)
    everything = made()
    assert wants(everything, message(), made_ms + 1, NOW)
    assert not wants(everything, message(), made_ms - 1, NOW)  # published before it existed
    heart = everything.model_copy(update={"task": "heart_disease"})
    assert wants(heart, message(), made_ms, NOW) and not wants(heart, message("diabetes"), made_ms, NOW)
    ended = everything.model_copy(update={"end": NOW - timedelta(seconds=1)})
    assert not wants(ended, message(), made_ms + 1, NOW)


def test_retries_back_off_1_2_4_up_to_30_s_and_give_up_when_the_budget_is_spent() -> None:
    assert [backoff(n) for n in range(1, 9)] == [1, 2, 4, 8, 16, 30, 30, 30]
    first, budget = 1000.0, 600.0
    assert after_failure(first, 1, first, budget).retry_at == first + 1
    assert after_failure(first, 6, first + 100, budget).retry_at == first + 130
    assert after_failure(first, 20, first + 590, budget).retry_at == first + 600  # the last try at the budget's end
    assert after_failure(first, 21, first + 600, budget).retry_at is None
    reason = give_up_reason("https://ehr.example/h", "sub-1", 17, 600.2, "cannot connect")
    assert reason.startswith("delivery to https://ehr.example/h for subscription sub-1 failed 17 times over 600 s")
    assert "aimass replay --service report --reason delivery" in reason


def test_a_failing_endpoint_gets_one_probe_at_a_time_after_its_backoff() -> None:
    health = EndpointHealth()
    assert health.allows(PARALLEL_PER_SUBSCRIPTION - 1, 0) and not health.allows(PARALLEL_PER_SUBSCRIPTION, 0)
    for _ in range(PARALLEL_PER_SUBSCRIPTION):  # the deliveries in flight when it went down: one failure
        health.failed(100.0, probe=False)
    assert not health.allows(0, 100.5) and health.allows(0, 101.0) and not health.allows(1, 101.0)
    health.failed(101.0, probe=True)
    assert not health.allows(0, 102.5) and health.allows(0, 103.0)
    health.failed(103.0, probe=True)
    assert not health.allows(0, 106.5) and health.allows(0, 107.0)
    health.succeeded()
    assert health.allows(3, 0)


def pending(report_id: str, due: float, first: float | None = None, subscription: str = "sub1") -> PendingDelivery:
    return PendingDelivery(
        subscription_id=subscription,
        hospital="cleveland",
        report_id=report_id,
        event_number=1,
        first_at=due if first is None else first,
        due_at=due,
        topic="aimass.reports",
        partition=0,
        offset=3,
        timestamp_ms=1,
        key="p1",
        value=message(report_id=report_id).model_dump_json(),
        headers=[("ce_id", report_id)],
    )


def test_the_due_set_lists_due_deliveries_first_due_first_and_one_replica_claims_each(tmp_path: Path) -> None:
    queue, other = FileDeliveryQueue(tmp_path), FileDeliveryQueue(tmp_path)  # two replicas, one volume
    queue.schedule([pending("r-2", 20.0), pending("r-1", 10.0), pending("r-3", 99.0)])
    due = queue.due(50.0)
    assert [e.report_id for e in due] == ["r-1", "r-2"] and queue.pending() == 3
    claimed = queue.claim(due[0], lease_until=80.0)
    assert claimed is not None and claimed.delivery.report_id == "r-1"
    assert other.claim(due[0], lease_until=80.0) is None  # the other replica lost the race
    assert [e.report_id for e in other.due(50.0)] == ["r-2"]
    queue.retry(claimed, claimed.delivery.model_copy(update={"due_at": 60.0, "attempts": 1}))
    assert [e.report_id for e in other.due(60.0)] == ["r-2", "r-1"]
    assert [e.first_at for e in other.due(60.0)] == [20.0, 10.0]  # the budget still counts from the first time
    again = other.claim(other.due(60.0)[1], 80.0)
    assert again is not None and again.delivery.attempts == 1
    other.done(again)
    assert queue.pending() == 2


def test_a_claim_whose_lease_ran_out_is_due_again(tmp_path: Path) -> None:
    queue = FileDeliveryQueue(tmp_path)
    queue.schedule([pending("r-1", 10.0)])
    claimed = queue.claim(queue.due(10.0)[0], lease_until=40.0)
    assert claimed is not None and queue.due(100.0) == []
    assert queue.release_expired(39.0) == 0 and queue.release_expired(41.0) == 1
    [entry] = FileDeliveryQueue(tmp_path).due(41.0)  # a fresh process sees it too
    assert entry.report_id == "r-1" and entry.first_at == 10.0
    queue.done(claimed)  # the replica that had it finishes late: the released one stays
    assert queue.pending() == 1


def test_subscription_files_are_private_and_event_numbers_are_never_handed_out_twice(tmp_path: Path) -> None:
    store = FileSubscriptionStore(tmp_path)
    kept = made()
    store.save(kept)
    assert store.get("cleveland", kept.id) == kept and store.get("hungary", kept.id) is None
    assert (tmp_path / "cleveland" / f"{kept.id}.json").stat().st_mode & 0o077 == 0
    assert [s.id for s in store.of_hospital("cleveland")] == [kept.id] and store.of_hospital("hungary") == []
    numbers: list[int] = []

    def count() -> None:
        replica = FileSubscriptionStore(tmp_path)
        numbers.extend(replica.next_event("cleveland", kept.id) for _ in range(25))

    threads = [threading.Thread(target=count) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(numbers) == list(range(1, 101))
    store.set_status("cleveland", kept.id, "error", "delivery failed")
    assert FileSubscriptionStore(tmp_path).of_hospital("cleveland")[0].status == "error"
    assert store.delete("cleveland", kept.id) and not store.delete("cleveland", kept.id)
    store.set_status("cleveland", kept.id, "active", None)  # deleted meanwhile: stays deleted
    assert store.of_hospital("cleveland") == [] and store.get("cleveland", "../etc") is None
