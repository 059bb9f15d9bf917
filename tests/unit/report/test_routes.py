"""report's HTTP routes behind the gate, with real tokens: each format to its hospital, 401 without a token, 403 for
another hospital's or an operator's token, a signed link a browser opens without one, one audit event per read."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import httpx
import pytest

from services.report.adapters.file_store import FileReportStore
from services.report.adapters.registry_models import RegistryModels
from services.report.handlers import Reporter
from services.report.metrics import ReportMetrics
from services.report.routes import ReportRoutes
from shared.access import refusal_event
from shared.auth import SCOPE_REPORTS, SCOPE_SUBMIT, Gate, refusal_response
from shared.http import HttpApp, Refused, Request, Response
from shared.links import LinkSigner
from shared.metrics import ServiceMetrics
from shared.schemas.audit import AccessEvent
from shared.schemas.predictions import FusedPrediction
from shared.settings import Settings
from shared.tasks import load_tasks
from tests.support.factories.report import fused_for, record_from
from tests.support.identity import local_identity
from tests.unit.report.conftest import SITES

WHEN = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)
BASE = "http://report.test"


class Edge:
    """The report service's routes as ``app.py`` wires them, with the audit events kept here instead of on Kafka."""

    def __init__(self, settings: Settings) -> None:
        self.events: list[AccessEvent] = []
        self.reporter = Reporter(
            load_tasks(),
            RegistryModels(settings),
            FileReportStore.under(settings),
            ReportMetrics(ServiceMetrics("report").registry),
            BASE,
        )
        links = LinkSigner(b"unit-link-key-0123456789abcdef", 600)
        gate = Gate(local_identity().verifier(), links)
        routes = ReportRoutes(FileReportStore.under(settings), self.reporter.pdf, self.record, links, BASE)
        self.http = HttpApp(None)  # type: ignore[arg-type]  # no lifespan: no broker in a unit test
        self.http.refused = self.refused
        self.http.get("/reports/{report_id}", routes.report, guard=gate.scoped_or_link(SCOPE_REPORTS))
        self.http.post("/reports/{report_id}/link", routes.link, guard=gate.scoped(SCOPE_REPORTS))
        self.http.get("/patients/{pseudonym}/reports", routes.patient_reports, guard=gate.scoped(SCOPE_REPORTS))
        self.http.post("/patients/{pseudonym}/link", routes.patient_link, guard=gate.scoped(SCOPE_REPORTS))
        self.http.get(
            "/patients/{pseudonym}/reports/{report_id}", routes.report, guard=gate.scoped_or_link(SCOPE_REPORTS)
        )
        self.gate = gate
        self.client = httpx.AsyncClient(
            transport=httpx.ASGITransport(self.http, client=("10.9.8.7", 5000)), base_url=BASE
        )

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


def as_(hospital: str | None, scope: str | None = None) -> dict[str, str]:
    return local_identity().headers(hospital, scope)


async def test_each_format_to_the_patient_s_hospital_and_one_audit_event_per_read(
    edge: Edge, swiss_fused: FusedPrediction
) -> None:
    report = edge.reporter.report(swiss_fused, WHEN)
    swiss = as_("switzerland")
    html = await edge.client.get(f"/reports/{report.report_id}", headers=swiss)
    assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
    assert swiss_fused.patient in html.text and html.headers["cache-control"] == "private, no-store"
    pdf = await edge.client.get(f"/reports/{report.report_id}?format=pdf", headers=swiss)
    assert pdf.headers["content-type"] == "application/pdf" and pdf.content.startswith(b"%PDF")
    fhir = await edge.client.get(f"/reports/{report.report_id}?format=fhir", headers=swiss)
    assert fhir.json()["resourceType"] == "Bundle"
    assert [e.entity[0].detail[-1].valueString for e in edge.events] == ["html", "pdf", "fhir"]
    for event in edge.events:
        assert event.outcome == "0" and event.agent[0].who.identifier.value == "switzerland-backend"
        assert event.agent[0].network.address == "10.9.8.7"
        assert event.entity[1].what.identifier.value == swiss_fused.patient
    assert (await edge.client.get(f"/reports/{report.report_id}?format=docx", headers=swiss)).status_code == 400
    assert (await edge.client.get("/reports/no-such-report", headers=swiss)).status_code == 404
    assert (await edge.client.get("/reports/..%2F..%2Fetc", headers=swiss)).status_code == 404


async def test_no_token_is_401_another_hospital_or_an_operator_is_403_and_each_refusal_is_audited(
    edge: Edge, swiss_fused: FusedPrediction
) -> None:
    report = edge.reporter.report(swiss_fused, WHEN)
    path = f"/reports/{report.report_id}"
    anonymous = await edge.client.get(path)
    assert anonymous.status_code == 401 and anonymous.headers["www-authenticate"] == 'Bearer realm="aimass"'
    other = await edge.client.get(path, headers=as_("hungary"))
    assert other.status_code == 403 and "another hospital" in other.json()["error_description"]
    operator = await edge.client.get(path, headers=as_(None))
    assert operator.status_code == 403 and SCOPE_REPORTS in operator.json()["error_description"]
    fhir = await edge.client.get(f"{path}?format=fhir", headers=as_("hungary"))
    assert fhir.status_code == 403 and fhir.json()["resourceType"] == "OperationOutcome"
    assert [e.outcome for e in edge.events] == ["4", "4", "4", "4"]
    assert all(e.entity[0].what.display == path for e in edge.events)  # what was asked for, no patient: not read
    assert all(swiss_fused.patient not in e.model_dump_json() for e in edge.events)


async def test_a_signed_link_opens_its_report_in_a_browser_with_its_pdf_and_nothing_else(
    edge: Edge, swiss_fused: FusedPrediction
) -> None:
    report = edge.reporter.report(swiss_fused, WHEN)
    other = edge.reporter.report(fused_for(record_from("switzerland", 7), SITES), WHEN)
    made = await edge.client.post(f"/reports/{report.report_id}/link", headers=as_("switzerland"))
    assert made.status_code == 201 and made.json()["url"].startswith(f"{BASE}/reports/{report.report_id}?")
    link = urlsplit(made.json()["url"])
    page = await edge.client.get(f"{link.path}?{link.query}", headers={"accept": "text/html"})
    assert page.status_code == 200 and swiss_fused.patient in page.text
    pdf_link = page.text.split('href="', 1)[1].split('"', 1)[0].replace("&amp;", "&")
    assert "format=pdf" in pdf_link and "sig=" in pdf_link  # the page's own links keep the signature
    pdf = await edge.client.get(f"{link.path}{pdf_link}")
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    elsewhere = await edge.client.get(f"/reports/{other.report_id}?{link.query}", headers={"accept": "text/html"})
    assert elsewhere.status_code == 401 and "ask for a new link" in elsewhere.text
    guessed = await edge.client.get(f"/reports/{report.report_id}")
    assert guessed.status_code == 401
    reads = [e for e in edge.events if e.outcome == "0" and e.action == "R"]
    assert [e.agent[0].policy[0].split(":")[2] for e in reads] == ["link", "link"]  # audited as the link's client
    assert {e.agent[0].who.identifier.value for e in reads} == {"switzerland-backend"}
    assert edge.events[0].action == "C" and edge.events[0].outcomeDesc == "signed link issued"
    denied = await edge.client.post(f"/reports/{report.report_id}/link", headers=as_("cleveland"))
    assert denied.status_code == 403


async def test_a_patient_s_reports_newest_first_to_its_hospital_only(edge: Edge, swiss_fused: FusedPrediction) -> None:
    patient = swiss_fused.patient
    later = fused_for(record_from("switzerland", 3), SITES).model_copy(update={"patient": patient})
    old = edge.reporter.report(swiss_fused, WHEN)
    new = edge.reporter.report(later, WHEN + timedelta(days=30))
    listing = await edge.client.get(f"/patients/{patient}/reports", headers=as_("switzerland"))
    assert [r["report_id"] for r in listing.json()["reports"]] == [new.report_id, old.report_id]
    assert edge.events[-1].action == "E" and edge.events[-1].subtype[0].code == "search-type"
    assert (await edge.client.get(f"/patients/{patient}/reports", headers=as_("hungary"))).status_code == 403
    assert (await edge.client.get(f"/patients/{patient}/reports")).status_code == 401
    empty = await edge.client.get("/patients/nobody/reports", headers=as_("switzerland"))
    assert json.loads(empty.content)["reports"] == []


async def test_a_patient_link_opens_the_patients_pages_and_answers_only_when_asked_by_a_client_that_may_write(
    edge: Edge, swiss_fused: FusedPrediction
) -> None:
    own = edge.reporter.report(swiss_fused, WHEN)
    other = edge.reporter.report(fused_for(record_from("switzerland", 7), SITES), WHEN)
    patient = swiss_fused.patient
    made = await edge.client.post(f"/patients/{patient}/link", headers=as_("switzerland"))
    assert made.status_code == 201
    link = urlsplit(made.json()["url"])
    page = await edge.client.get(f"{link.path}/reports/{own.report_id}?{link.query}", headers={"accept": "text/html"})
    assert page.status_code == 200 and patient in page.text  # the timeline's links to the patient's reports
    beside = await edge.client.get(f"{link.path}/reports/{other.report_id}?{link.query}")
    assert beside.status_code == 404  # another patient's report is no page of this patient's
    assert link.path == f"/patients/{patient}" and "can=" not in link.query
    below = Request(
        f"/patients/{patient}/questions/heart_disease", {}, dict(p.split("=") for p in link.query.split("&"))
    )
    assert edge.gate.links is not None and edge.gate.links.verify(below, WHEN.timestamp()).resource == link.path
    reader = as_("switzerland", f"{SCOPE_REPORTS}")
    refused = await edge.client.post(f"/patients/{patient}/link?answer=true", headers=reader)
    assert refused.status_code == 403 and "Bundle.write" in refused.json()["error_description"]
    writer = as_("switzerland", f"{SCOPE_REPORTS} {SCOPE_SUBMIT}")
    answering = await edge.client.post(f"/patients/{patient}/link?answer=true", headers=writer)
    assert answering.status_code == 201 and "can=answer" in answering.json()["url"]
    assert (await edge.client.post(f"/patients/{patient}/link", headers=as_("hungary"))).status_code == 403
    assert (await edge.client.post("/patients/nobody/link", headers=as_("switzerland"))).status_code == 404
    issued = [e for e in edge.events if e.outcomeDesc == "signed link issued"]
    assert len(issued) == 2 and all(e.action == "C" and patient in e.model_dump_json() for e in issued)
