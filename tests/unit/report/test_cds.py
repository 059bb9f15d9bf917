"""CDS Hooks: discovery, patient-view and order-select calls through the gate with real tokens, the cards checked
against the spec's shapes (``services.report.cds``'s models) and FHIR R4, the patient found by the pseudonym ingest
makes of the EHR's MRN, and every call audited by pseudonym."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fhir.resources.R4B.patient import Patient
from fhir.resources.R4B.servicerequest import ServiceRequest

from services.ingest.fhir_values import patient_identifier as ingest_patient_identifier
from services.report.adapters.fhir_patients import FhirPatients
from services.report.adapters.file_store import FileReportStore
from services.report.adapters.registry_models import RegistryModels
from services.report.cds import (
    Card,
    CdsDiscovery,
    CdsRequestError,
    CdsResponse,
    indicator,
    patient_identifier,
    read_request,
    summary,
)
from services.report.cds_routes import CdsRoutes
from services.report.handlers import Reporter
from services.report.metrics import ReportMetrics
from services.report.ports import PatientUnavailable
from shared.access import refusal_event
from shared.auth import SCOPE_PREDICT, SCOPE_SUBMIT, Gate, refusal_response
from shared.http import HttpApp, Refused, Request, Response
from shared.links import LinkSigner
from shared.metrics import ServiceMetrics
from shared.pseudonyms import pseudonym
from shared.schemas.audit import AccessEvent
from shared.schemas.records import LOINC
from shared.settings import Settings
from shared.tasks import load_tasks
from tests.support.factories.report import HeartRecord, fused_for, record_from
from tests.support.identity import local_identity
from tests.unit.report.conftest import SITES

WHEN = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)
BASE = "http://report.test"
KEY = b"report-unit-test-key-0123456789"  # the key tests/support/factories/report.py pseudonymizes with
LINK_KEY = b"unit-link-key-0123456789abcdef"
PATIENT_VIEW = "/cds-services/aimass-heart-disease"
ORDER_SELECT = "/cds-services/aimass-heart-disease-orders"


class FakePatients:
    """The EHR's FHIR server: the Patients it holds, and what it was asked."""

    def __init__(self, patients: dict[str, dict[str, Any]]) -> None:
        self.patients = patients
        self.asked: list[tuple[str, str, str | None]] = []

    async def patient(self, fhir_server: str, patient_id: str, access_token: str | None) -> dict[str, Any]:
        self.asked.append((fhir_server, patient_id, access_token))
        if patient_id not in self.patients:
            raise PatientUnavailable("the EHR's FHIR server answered 404 for the Patient")
        return self.patients[patient_id]


class Edge:
    def __init__(self, settings: Settings, patients: FakePatients | None = None) -> None:
        self.events: list[AccessEvent] = []
        self.audit_fails = False
        tasks = load_tasks()
        self.store = FileReportStore.under(settings)
        self.reporter = Reporter(
            tasks, RegistryModels(settings), self.store, ReportMetrics(ServiceMetrics("report").registry), BASE
        )
        self.links = LinkSigner(LINK_KEY, 600)
        self.patients = patients or FakePatients({})
        self.metrics = ReportMetrics(ServiceMetrics("report").registry)
        self.audit_gate: asyncio.Event | None = None  # set: the audit waits for it, as a slow broker would
        gate = Gate(local_identity().verifier(), self.links)
        cds = CdsRoutes(tasks, self.store, KEY, self.links, self.record, BASE, self.patients, metrics=self.metrics)
        self.http = HttpApp(None)  # type: ignore[arg-type]  # no lifespan: no broker in a unit test
        self.http.refused = self.refused
        self.http.get("/cds-services", cds.discovery, guard=None)
        self.http.post("/cds-services/{service_id}", cds.call, guard=gate.scoped(SCOPE_PREDICT))
        self.client = httpx.AsyncClient(transport=httpx.ASGITransport(self.http), base_url=BASE)

    async def record(self, event: AccessEvent) -> None:
        if self.audit_fails:
            raise ConnectionError("broker unavailable")
        self.events.append(event)
        if self.audit_gate is not None:
            await self.audit_gate.wait()

    def calls(self, hook: str, outcome: str) -> float:
        return self.metrics.cds_calls.labels(hook, outcome)._value.get()

    async def refused(self, request: Request, refused: Refused) -> Response:
        if not self.audit_fails:  # as the service does: a refusal stands whether or not it could be audited
            await self.record(refusal_event("report", request, refused))
        return refusal_response(request, refused)


@pytest.fixture
async def edge(fresh_settings: Settings):
    made = Edge(fresh_settings)
    yield made
    await made.client.aclose()


def ehr_patient(record: HeartRecord, ehr_id: str = "ehr-4711") -> dict[str, Any]:
    """The Patient as the EHR's FHIR server holds it: its own logical id, the hospital's MRN typed MR."""
    return {
        "resourceType": "Patient",
        "id": ehr_id,
        "identifier": [
            {"system": "urn:oid:2.16.840.1.113883.4.1", "value": "123-45-6789"},
            {
                "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]},
                "system": "urn:hospital:mrn",
                "value": str(record.raw["patient_id"]),
            },
        ],
    }


def call(hook: str, patient: dict[str, Any] | None, ehr_id: str = "ehr-4711", **context: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "hook": hook,
        "hookInstance": str(uuid.uuid4()),
        "context": {"userId": "Practitioner/dr-1", "patientId": ehr_id, **context},
    }
    if patient is not None:
        body["prefetch"] = {"patient": patient}
    return body


def as_(hospital: str | None) -> dict[str, str]:
    return local_identity().headers(hospital)


async def test_discovery_lists_a_patient_view_and_an_order_select_service_per_task_without_a_token(edge: Edge) -> None:
    answer = await edge.client.get("/cds-services")
    assert answer.status_code == 200
    found = CdsDiscovery.model_validate(answer.json())
    services = {s.id: s for s in found.services}
    assert services["aimass-heart-disease"].hook == "patient-view"
    assert services["aimass-heart-disease-orders"].hook == "order-select"
    assert all(s.prefetch == {"patient": "Patient/{{context.patientId}}"} for s in services.values())
    assert all(s.description and s.title for s in services.values())
    assert edge.events == []  # nothing read, nothing audited


async def test_patient_view_gives_the_newest_result_as_a_valid_card_found_by_the_ehr_s_mrn(edge: Edge) -> None:
    record = record_from("hungary", 1)  # no cholesterol (LOINC 2093-3) on record
    older = edge.reporter.report(fused_for(record, SITES), WHEN.replace(day=1))
    newest_fused = fused_for(record, SITES).model_copy(update={"record_id": "newer-record"})
    newest = edge.reporter.report(newest_fused, WHEN)
    assert older.patient == newest.patient
    answer = await edge.client.post(
        PATIENT_VIEW, json=call("patient-view", ehr_patient(record)), headers=as_("hungary")
    )
    assert answer.status_code == 200, answer.text
    [card] = CdsResponse.model_validate(answer.json()).cards
    view = edge.store.view(newest.report_id)
    assert view is not None
    assert len(card.summary) <= 140 and f"{view.probability:.0%}" in card.summary
    assert card.indicator == indicator(view)
    assert card.source.label and card.source.url == BASE and card.source.topic.code == "heart_disease"
    assert card.detail is not None
    for driver in view.drivers:
        assert driver.label in card.detail.replace("\\", "")
    for model in view.models:
        assert model.site in card.detail
    if view.needs_review:
        assert all(reason.split()[0] in card.detail for reason in view.review_reasons)
    # The link is the newest report's, signed for the calling client, and opens it.
    [link, asking] = card.links or []
    assert link.type == "absolute"
    parts = urlsplit(link.url)
    assert parts.path == f"/reports/{newest.report_id}"
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    opened = edge.links.verify(Request(parts.path, {}, query), datetime.now(UTC).timestamp())
    assert opened.client_id == "hungary-backend" and opened.hospital == "hungary"
    # The result lacks inputs: a second link opens the questioning page, answering only if the client may write.
    parts = urlsplit(asking.url)
    assert parts.path == f"/patients/{newest.patient}/questions/heart_disease" and asking.type == "absolute"
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    may = edge.links.verify(Request(parts.path, {}, query), datetime.now(UTC).timestamp())
    assert may.hospital == "hungary" and may.allows(SCOPE_SUBMIT) == ("can" in query)
    # A suggestion to order the missing cholesterol, a draft ServiceRequest for the EHR's own patient.
    assert "Cholesterol" in view.not_measured
    orders = [a.resource for s in card.suggestions or [] for a in s.actions or []]
    codes = {r["code"]["coding"][0]["code"]: r for r in orders if r}
    assert set(codes) <= {"2093-3", "8480-6"} and "2093-3" in codes
    request = ServiceRequest.model_validate(codes["2093-3"])
    assert request.subject.reference == "Patient/ehr-4711" and request.code.coding[0].system == LOINC
    assert card.selectionBehavior == "any"
    # One audit event, the patient by pseudonym, no identifier the EHR sent.
    [event] = edge.events
    assert event.outcome == "0" and event.agent[0].who.identifier.value == "hungary-backend"
    assert event.entity[0].what.reference == f"RiskAssessment/{newest.report_id}"
    assert event.entity[1].what.identifier.value == newest.patient
    dumped = event.model_dump_json()
    assert str(record.raw["patient_id"]) not in dumped and "ehr-4711" not in dumped and "123-45-6789" not in dumped


async def test_another_hospital_s_token_finds_no_result_for_the_same_ids(edge: Edge) -> None:
    record = record_from("hungary", 1)
    made = edge.reporter.report(fused_for(record, SITES), WHEN)
    body = call("patient-view", ehr_patient(record))
    answer = await edge.client.post(PATIENT_VIEW, json=body, headers=as_("cleveland"))
    assert answer.status_code == 200
    [card] = CdsResponse.model_validate(answer.json()).cards
    assert card.indicator == "info" and "no coronary artery disease result" in card.summary
    assert made.report_id not in answer.text and "risk of" not in answer.text and card.links is None
    [event] = edge.events
    assert event.entity[1].what.identifier.value != made.patient  # cleveland's pseudonym of the same MRN


async def test_without_prefetch_the_patient_comes_from_the_ehr_s_fhir_server_else_context_patient_id_names_it(
    fresh_settings: Settings,
) -> None:
    record = record_from("va-long-beach", 5)
    patients = FakePatients({"ehr-1": ehr_patient(record, "ehr-1")})
    edge = Edge(fresh_settings, patients)
    try:
        edge.reporter.report(fused_for(record, SITES), WHEN)
        body = call("patient-view", None, "ehr-1")
        body["fhirServer"] = "https://ehr.example/fhir"
        body["fhirAuthorization"] = {
            "access_token": "ehr-token",
            "token_type": "Bearer",
            "expires_in": 300,
            "scope": "patient/Patient.read",
            "subject": "aimass",
        }
        fetched = await edge.client.post(PATIENT_VIEW, json=body, headers=as_("va-long-beach"))
        assert fetched.status_code == 200 and "risk of" in CdsResponse.model_validate(fetched.json()).cards[0].summary
        assert patients.asked == [("https://ehr.example/fhir", "ehr-1", "ehr-token")]
        body["context"]["patientId"] = "unknown-to-the-ehr"
        missing = await edge.client.post(PATIENT_VIEW, json=body, headers=as_("va-long-beach"))
        assert missing.status_code == 412 and "404" in missing.json()["error_description"]
        # Neither prefetch nor a FHIR server: the EHR's id is the patient's id at the hospital.
        direct = call("patient-view", None, str(record.raw["patient_id"]))
        answer = await edge.client.post(PATIENT_VIEW, json=direct, headers=as_("va-long-beach"))
        assert "risk of" in CdsResponse.model_validate(answer.json()).cards[0].summary
    finally:
        await edge.client.aclose()


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"hook": "order-sign"}, "answers the patient-view hook"),
        ({"context": {"userId": "Practitioner/1"}}, "patientId"),
        ({"context": {"userId": "Device/1", "patientId": "p"}}, "context.userId"),
        ({"hookInstance": ""}, "hookInstance"),
        ({"prefetch": {"patient": {"resourceType": "Patient", "id": "someone-else"}}}, "not the patient"),
        ({"prefetch": {"patient": {"resourceType": "Observation"}}}, "must be the Patient"),
        ({"fhirAuthorization": {"access_token": "t"}}, "fhirAuthorization"),
    ],
)
async def test_a_request_that_is_not_a_valid_patient_view_call_is_400_with_the_reason(
    edge: Edge, change: dict[str, Any], reason: str
) -> None:
    body = {**call("patient-view", {"resourceType": "Patient", "id": "ehr-4711"}), **change}
    answer = await edge.client.post(PATIENT_VIEW, json=body, headers=as_("hungary"))
    assert answer.status_code == 400 and reason in answer.json()["error_description"], answer.text
    assert (await edge.client.post(PATIENT_VIEW, content=b"{", headers=as_("hungary"))).status_code == 400
    assert edge.events == []


async def test_calls_need_a_token_with_the_predict_scope_and_an_unaudited_call_is_not_answered(edge: Edge) -> None:
    record = record_from("hungary", 1)
    edge.reporter.report(fused_for(record, SITES), WHEN)
    body = call("patient-view", ehr_patient(record))
    assert (await edge.client.post(PATIENT_VIEW, json=body)).status_code == 401
    operator = await edge.client.post(PATIENT_VIEW, json=body, headers=as_(None))
    assert operator.status_code == 403 and SCOPE_PREDICT in operator.json()["error_description"]
    narrow = await edge.client.post(
        PATIENT_VIEW, json=body, headers=local_identity().headers("hungary", "system/DiagnosticReport.read")
    )
    assert narrow.status_code == 403
    assert (
        await edge.client.post("/cds-services/no-such-service", json=body, headers=as_("hungary"))
    ).status_code == 404
    edge.audit_fails = True
    unaudited = await edge.client.post(PATIENT_VIEW, json=body, headers=as_("hungary"))
    assert unaudited.status_code == 503 and "risk of" not in unaudited.text


def order(code: str, system: str = LOINC, order_id: str = "draft-1") -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {
                "resource": {
                    "resourceType": "ServiceRequest",
                    "id": order_id,
                    "status": "draft",
                    "intent": "order",
                    "code": {"coding": [{"system": system, "code": code}]},
                    "subject": {"reference": "Patient/ehr-4711"},
                }
            }
        ],
    }


async def test_order_select_says_how_the_newest_result_used_the_ordered_input(edge: Edge) -> None:
    record = record_from("hungary", 1)  # blood pressure 140 on record, no cholesterol
    made = edge.reporter.report(fused_for(record, SITES), WHEN)
    view = edge.store.view(made.report_id)
    assert view is not None

    async def cards(draft: dict[str, Any], selections: list[str]) -> list[Card]:
        body = call("order-select", ehr_patient(record), selections=selections, draftOrders=draft)
        answer = await edge.client.post(ORDER_SELECT, json=body, headers=as_("hungary"))
        assert answer.status_code == 200, answer.text
        return CdsResponse.model_validate(answer.json()).cards

    [missing] = await cards(order("2093-3"), ["ServiceRequest/draft-1"])
    assert "computed without cholesterol" in missing.summary and missing.indicator == "info"
    [measured] = await cards(order("8480-6"), ["ServiceRequest/draft-1"])
    assert "140 mmHg" in measured.summary
    driver = next((d for d in view.drivers if d.label == "Resting systolic BP"), None)
    if driver is not None:
        assert f"{driver.delta * 100:+.1f} pts" in (measured.detail or "")
    assert await cards(order("2093-3"), ["ServiceRequest/another"]) == []  # not the selected one
    assert await cards(order("1234-5"), ["ServiceRequest/draft-1"]) == []  # no input of the task
    bad = call("order-select", ehr_patient(record), selections=[], draftOrders=order("2093-3"))
    assert (await edge.client.post(ORDER_SELECT, json=bad, headers=as_("hungary"))).status_code == 400


@pytest.mark.parametrize(
    "patient",
    [
        {"resourceType": "Patient", "id": "a", "identifier": [{"value": "X-1"}, {"value": "X-2"}]},
        {
            "resourceType": "Patient",
            "id": "b",
            "identifier": [{"value": "SSN"}, {"type": {"coding": [{"code": "MR"}]}, "value": "MRN-7"}],
        },
        {"resourceType": "Patient", "id": "only-an-id"},
        {"resourceType": "Patient", "id": "c", "identifier": [{"system": "urn:x"}, {"value": "Y-9"}]},
    ],
)
def test_the_ehr_s_patient_maps_to_the_id_ingest_pseudonymizes(patient: dict[str, Any]) -> None:
    assert patient_identifier(patient) == ingest_patient_identifier(Patient.model_validate(patient))


def test_the_indicator_and_summary_follow_the_risk_and_the_review_flag(edge: Edge) -> None:
    made = edge.reporter.report(fused_for(record_from("cleveland", 7), SITES), WHEN)
    view = edge.store.view(made.report_id)
    assert view is not None
    high = view.model_copy(update={"probability": 0.91, "label": 1, "needs_review": False})
    assert indicator(high) == "critical"
    assert indicator(high.model_copy(update={"needs_review": True})) == "warning"
    assert indicator(high.model_copy(update={"probability": 0.6})) == "warning"
    low = view.model_copy(update={"probability": 0.2, "label": 0, "needs_review": False})
    assert indicator(low) == "info" and indicator(low.model_copy(update={"needs_review": True})) == "warning"
    long = high.model_copy(update={"positive_label": "a condition with a very long name " * 6, "needs_review": True})
    assert len(summary(long)) <= 140 and summary(long).endswith("…")


def test_the_answer_models_refuse_what_the_spec_does_not_allow() -> None:
    source = {"label": "AI Mass"}
    with pytest.raises(ValueError, match="140"):
        Card.model_validate({"summary": "x" * 141, "indicator": "info", "source": source})
    with pytest.raises(ValueError, match="selectionBehavior"):
        Card.model_validate({"summary": "s", "indicator": "info", "source": source, "suggestions": [{"label": "x"}]})
    with pytest.raises(ValueError):
        Card.model_validate({"summary": "s", "indicator": "urgent", "source": source})
    with pytest.raises(ValueError, match="absolute"):
        Card.model_validate(
            {
                "summary": "s",
                "indicator": "info",
                "source": source,
                "links": [{"label": "l", "url": "/r", "type": "absolute"}],
            }
        )
    with pytest.raises(ValueError, match="resource"):
        Card.model_validate(
            {
                "summary": "s",
                "indicator": "info",
                "source": source,
                "selectionBehavior": "any",
                "suggestions": [{"label": "x", "actions": [{"type": "create", "description": "d"}]}],
            }
        )
    with pytest.raises(ValueError):
        Card.model_validate({"summary": "s", "indicator": "info", "source": source, "colour": "red"})
    with pytest.raises(CdsRequestError, match="order-select context"):
        read_request(json.dumps(call("order-select", None)).encode(), "order-select")


async def test_the_fhir_server_adapter_reads_one_patient_with_the_ehr_s_token() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.raw_path.endswith(b"/Patient/p%2F1"):
            return httpx.Response(200, json={"resourceType": "Patient", "id": "p/1"})
        return httpx.Response(404, json={"resourceType": "OperationOutcome"})

    patients = FhirPatients(transport=httpx.MockTransport(answer))
    found = await patients.patient("https://ehr.example/fhir/", "p/1", "tok")
    assert found["id"] == "p/1" and seen[0].headers["authorization"] == "Bearer tok"
    with pytest.raises(PatientUnavailable, match="404"):
        await patients.patient("https://ehr.example/fhir", "other", None)


async def test_a_result_that_needs_review_is_a_warning_card_listing_each_reason(edge: Edge) -> None:
    record = record_from("cleveland", 3)
    reasons = ["models disagree: spread 0.41 > 0.30", "model heart_disease/switzerland missing (deadline)"]
    fused = fused_for(record, SITES).model_copy(
        update={"probability": 0.22, "label": 0, "needs_review": True, "review_reasons": reasons}
    )
    made = edge.reporter.report(fused, WHEN)
    answer = await edge.client.post(
        PATIENT_VIEW, json=call("patient-view", ehr_patient(record)), headers=as_("cleveland")
    )
    [card] = CdsResponse.model_validate(answer.json()).cards
    # A low risk still warns: the result is not to be relied on until a person looked at it.
    assert card.indicator == "warning" and "22%" in card.summary
    assert card.detail is not None
    flags = card.detail.split("**Needs review**", 1)[1].split("**What drove it**", 1)[0]
    unescaped = flags.replace("\\", "")
    assert [line.removeprefix("- ") for line in unescaped.strip().splitlines()] == reasons
    assert [link.url.split("?")[0] for link in card.links or []] == [f"{BASE}/reports/{made.report_id}"]
    # The drivers are the report's own, each with its signed effect in points.
    view = edge.store.view(made.report_id)
    assert view is not None and view.drivers
    drivers = card.detail.split("**What drove it**", 1)[1].split("\n\n", 1)[0]
    for driver in view.drivers:
        assert f"{driver.delta * 100:+.1f}" in drivers


async def test_an_unknown_patient_gets_one_info_card_without_link_or_suggestion_and_the_lookup_is_audited(
    edge: Edge,
) -> None:
    edge.reporter.report(fused_for(record_from("hungary", 1), SITES), WHEN)  # someone else has a result
    stranger = {
        "resourceType": "Patient",
        "id": "ehr-9",
        "identifier": [{"type": {"coding": [{"code": "MR"}]}, "value": "MRN-NEVER-SEEN"}],
    }
    answer = await edge.client.post(PATIENT_VIEW, json=call("patient-view", stranger, "ehr-9"), headers=as_("hungary"))
    assert answer.status_code == 200
    [card] = CdsResponse.model_validate(answer.json()).cards
    assert card.indicator == "info" and "no coronary artery disease result" in card.summary
    assert card.links is None and card.suggestions is None and "%" not in card.summary
    [event] = edge.events
    expected = pseudonym(KEY, "hungary", "MRN-NEVER-SEEN")  # the pseudonym ingest would have made of the MRN
    assert event.outcome == "0" and event.entity[1].what.identifier.value == expected
    assert "MRN-NEVER-SEEN" not in event.model_dump_json()
    # order-select has nothing to say about an order for a patient without a result: no card at all.
    body = call("order-select", stranger, "ehr-9", selections=["ServiceRequest/draft-1"], draftOrders=order("2093-3"))
    none = await edge.client.post(ORDER_SELECT, json=body, headers=as_("hungary"))
    assert none.status_code == 200 and none.json() == {"cards": []}
    assert edge.calls("patient-view", "no_result") == 1 and edge.calls("order-select", "no_result") == 1


async def test_the_call_is_answered_only_after_its_audit_event_was_taken(edge: Edge) -> None:
    record = record_from("hungary", 1)
    edge.reporter.report(fused_for(record, SITES), WHEN)
    edge.audit_gate = asyncio.Event()
    body = call("patient-view", ehr_patient(record))
    pending = asyncio.create_task(edge.client.post(PATIENT_VIEW, json=body, headers=as_("hungary")))
    for _ in range(200):  # until the audit event is handed over (the report is read off the event loop first)
        if edge.events:
            break
        await asyncio.sleep(0.01)
    assert len(edge.events) == 1
    await asyncio.sleep(0.1)
    assert not pending.done()  # the audit has not been acknowledged: no card has gone out
    edge.audit_gate.set()
    answer = await pending
    assert answer.status_code == 200 and "risk of" in answer.json()["cards"][0]["summary"]
    assert edge.calls("patient-view", "cards") == 1


async def test_malformed_calls_are_400_with_the_reason_and_counted_invalid(edge: Edge) -> None:
    cases = [
        (b"[]", "should be an object"),
        (b"not json", "JSON"),
        (json.dumps({"hook": "patient-view", "hookInstance": "x"}).encode(), "context"),
    ]
    for body, reason in cases:
        answer = await edge.client.post(
            PATIENT_VIEW, content=body, headers={**as_("hungary"), "content-type": "application/json"}
        )
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"] == "invalid_request" and reason in answer.json()["error_description"]
    assert edge.calls("patient-view", "invalid") == len(cases)
    assert edge.events == []  # nothing was read: nothing to audit
