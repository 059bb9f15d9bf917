"""The timeline's routes behind the gate with real tokens, on a store of real reports and a recording audit: the
patient's hospital reads, another hospital's token or one of no hospital is 403, each read audited once, the search
filtered to the token's hospital, the exports."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from urllib.parse import urlsplit

import httpx
import pytest
from fhir.resources.R4B.bundle import Bundle

from services.report.timeline_routes import TimelineRoutes
from shared.access import refusal_event
from shared.auth import SCOPE_REPORTS, Gate, Principal, refusal_response
from shared.http import HttpApp, Refused, Request, Response
from shared.links import LinkSigner
from shared.settings import Settings
from shared.tasks import load_tasks
from tests.support.fakes import RecordingAudit
from tests.support.identity import local_identity
from tests.unit.report.test_timeline import History

BASE = "http://report.test"
NOW = datetime(2026, 4, 1, tzinfo=UTC)


class Edge:
    """The timeline's routes as ``app.py`` wires them."""

    def __init__(self, settings: Settings) -> None:
        self.history = History(settings)
        self.audit = RecordingAudit()
        self.links = LinkSigner(b"unit-link-key-0123456789abcdef", 10**9)
        gate = Gate(local_identity().verifier(), self.links)
        routes = TimelineRoutes(self.history.store, load_tasks(), self.audit, clock=NOW.timestamp)
        self.http = HttpApp(None)  # type: ignore[arg-type]  # no broker in a unit test
        self.http.refused = self.refused
        self.http.get("/patients", routes.search, guard=gate.scoped(SCOPE_REPORTS))
        self.http.get("/patients/{pseudonym}", routes.timeline, guard=gate.scoped_or_link(SCOPE_REPORTS))
        self.http.get("/patients/{pseudonym}/export", routes.export, guard=gate.scoped_or_link(SCOPE_REPORTS))
        self.client = httpx.AsyncClient(transport=httpx.ASGITransport(self.http), base_url=BASE)

    async def refused(self, request: Request, refused: Refused) -> Response:
        with contextlib.suppress(ConnectionError):  # the refusal of an unauditable read still goes out
            await self.audit(refusal_event("report", request, refused))
        return refusal_response(request, refused)

    @property
    def reads(self) -> list:
        return [e for e in self.audit.events if e.outcome == "0"]


@pytest.fixture
async def edge(fresh_settings: Settings):
    made = Edge(fresh_settings)
    yield made
    await made.client.aclose()


def as_(hospital: str | None) -> dict[str, str]:
    return local_identity().headers(hospital, None)


async def test_the_timeline_page_to_the_patient_s_hospital_audited_once(edge: Edge) -> None:
    patient, ids = edge.history.patient, edge.history.report_ids
    page = await edge.client.get(f"/patients/{patient}", headers={**as_("cleveland"), "accept": "text/html"})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert page.headers["cache-control"] == "private, no-store"
    html = page.text
    assert 'id="risk-trend-heart_disease"' in html and 'id="latest-risk-heart_disease"' in html
    assert [html.count(f'class="result" data-report-id="{i}"') for i in ids] == [1, 1, 1]
    assert all(f'href="/patients/{patient}/reports/{i}"' in html for i in ids)
    assert '<section id="questioning">' in html
    [read] = edge.audit.events
    assert read.outcome == "0" and read.subtype[0].code == "read" and read.entity[1].what.identifier.value == patient
    assert read.entity[0].detail[-1].valueString == "html"
    as_json = await edge.client.get(f"/patients/{patient}?format=json", headers=as_("cleveland"))
    assert [r["report_id"] for r in as_json.json()["tasks"][0]["results"]] == ids
    accepting = await edge.client.get(
        f"/patients/{patient}", headers={**as_("cleveland"), "accept": "application/json"}
    )
    assert accepting.json()["patient"] == patient
    assert len(edge.reads) == 3
    assert (await edge.client.get(f"/patients/{patient}?format=xml", headers=as_("cleveland"))).status_code == 400
    unknown = await edge.client.get("/patients/nobody", headers=as_("cleveland"))
    assert unknown.status_code == 404 and edge.audit.events[-1].outcome == "4"


async def test_another_hospital_or_no_hospital_is_403_and_nothing_is_read(edge: Edge) -> None:
    patient = edge.history.patient
    for path in (
        f"/patients/{patient}",
        f"/patients/{patient}/export?format=fhir",
        f"/patients/{patient}/export?format=pdf",
    ):
        other = await edge.client.get(path, headers=as_("hungary"))
        assert other.status_code == 403, path
        nobody = await edge.client.get(path, headers=as_(None))
        assert nobody.status_code == 403, path
    assert (await edge.client.get(f"/patients/{patient}")).status_code == 401
    assert edge.reads == [] and all(e.outcome == "4" for e in edge.audit.events)
    # A refusal names what was asked for (the path, with the pseudonym), never a patient read.
    assert all([x.what.display for x in e.entity] == [e.entity[0].what.display] for e in edge.audit.events)
    assert all(e.entity[0].what.identifier is None for e in edge.audit.events)


async def test_a_signed_patient_link_opens_the_timeline_and_its_links_keep_the_signature(edge: Edge) -> None:
    patient = edge.history.patient
    principal = Principal(client_id="cleveland-backend", hospital="cleveland", scopes=frozenset({SCOPE_REPORTS}))
    path, _ = edge.links.sign(f"/patients/{patient}", principal, NOW.timestamp())
    query = urlsplit(path).query
    page = await edge.client.get(path, headers={"accept": "text/html"})
    assert page.status_code == 200
    assert f'href="/patients/{patient}/reports/{edge.history.report_ids[0]}?{query.replace("&", "&amp;")}"' in page.text
    assert f"/patients/{patient}/export?{query.replace('&', '&amp;')}&amp;format=pdf" in page.text
    pdf = await edge.client.get(f"/patients/{patient}/export?{query}&format=pdf")
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    assert [e.agent[0].policy[0].split(":")[2] for e in edge.reads] == ["link", "link"]
    elsewhere = await edge.client.get(f"/patients/someone-else?{query}")
    assert elsewhere.status_code == 401


async def test_the_exports_are_a_valid_fhir_collection_and_a_pdf(edge: Edge) -> None:
    patient = edge.history.patient
    fhir = await edge.client.get(f"/patients/{patient}/export?format=fhir", headers=as_("cleveland"))
    assert fhir.status_code == 200 and fhir.headers["content-type"] == "application/fhir+json"
    bundle = fhir.json()
    Bundle.model_validate(bundle)
    assert bundle["type"] == "collection" and bundle["timestamp"].startswith("2026-04-01")
    kinds = [e["resource"]["resourceType"] for e in bundle["entry"]]
    assert kinds == ["Patient"] + ["RiskAssessment", "DiagnosticReport"] * 3
    pdf = await edge.client.get(f"/patients/{patient}/export?format=pdf", headers=as_("cleveland"))
    assert pdf.headers["content-type"] == "application/pdf" and pdf.content.startswith(b"%PDF")
    assert [e.entity[0].detail[-1].valueString for e in edge.reads] == ["fhir", "pdf"]
    assert (
        await edge.client.get(f"/patients/{patient}/export?format=docx", headers=as_("cleveland"))
    ).status_code == 400


async def test_the_search_sees_the_token_s_hospital_only_filters_and_is_audited_once(edge: Edge) -> None:
    patient, views = edge.history.patient, edge.history.views
    everything = await edge.client.get("/patients", headers=as_("cleveland"))
    [hit] = everything.json()["patients"]
    assert hit["patient"] == patient and [r["report_id"] for r in hit["results"]] == edge.history.report_ids[::-1]
    [search] = edge.audit.events
    assert search.subtype[0].code == "search-type" and len(search.entity) == 1  # no patient in a search's event
    assert "hospital" in {d.type for d in search.entity[0].detail}
    february = await edge.client.get("/patients?from=2026-02-01&to=2026-02-10", headers=as_("cleveland"))
    assert [r["report_id"] for r in february.json()["patients"][0]["results"]] == [edge.history.report_ids[1]]
    reviewed = await edge.client.get("/patients?needs_review=true&task=heart_disease", headers=as_("cleveland"))
    expected = {v.report_id for v in views if v.needs_review}
    assert {r["report_id"] for h in reviewed.json()["patients"] for r in h["results"]} == expected
    for band, inside in (
        ("low", lambda p: p < 0.15),
        ("medium", lambda p: 0.15 <= p < 0.5),
        ("high", lambda p: p >= 0.5),
    ):
        banded = await edge.client.get(f"/patients?band={band}", headers=as_("cleveland"))
        found = {r["report_id"] for h in banded.json()["patients"] for r in h["results"]}
        assert found == {v.report_id for v in views if inside(v.probability)}, band
    assert (await edge.client.get("/patients", headers=as_("hungary"))).json()["patients"] == []
    assert (await edge.client.get("/patients?hospital=hungary", headers=as_("cleveland"))).status_code == 403
    assert (await edge.client.get("/patients", headers=as_(None))).status_code == 403
    assert (await edge.client.get("/patients?band=extreme", headers=as_("cleveland"))).status_code == 400
    page = await edge.client.get("/patients?format=html", headers=as_("cleveland"))
    assert page.headers["content-type"].startswith("text/html") and f'href="/patients/{patient}"' in page.text
    assert sum(e.subtype[0].code == "search-type" and e.outcome == "0" for e in edge.audit.events) == 8


async def test_a_read_that_cannot_be_audited_is_not_answered(edge: Edge) -> None:
    edge.audit.failing = True
    answer = await edge.client.get(f"/patients/{edge.history.patient}?format=json", headers=as_("cleveland"))
    assert answer.status_code == 503 and edge.history.patient not in answer.text
