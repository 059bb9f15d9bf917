"""The demo's last act: each front door used once, as a hospital's interface engine and an EHR would use it.

1. Cleveland and Hungary subscribe a rest-hook endpoint (a receiver this process runs) to their RiskAssessments;
2. Hungary's interface engine sends an ORU^R01 over MLLP to its port and gets its ACK;
3. Cleveland's EHR POSTs a FHIR Bundle to ingest's FHIR REST intake (202 and the event id);
4. Cleveland asks for a synchronous prediction of another patient (``POST /predict/heart_disease``);
5. both new reports arrive at the receiver as rest-hook notifications;
6. Cleveland's EHR calls the CDS Hooks ``patient-view`` service for the patient it posted and gets a card.

The subscriptions are deleted at the end: a second run starts from nothing.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import hl7
import httpx
from hl7.mllp import open_hl7_connection

from services.cli.scenario import formats
from services.cli.scenario.heart import records_by_hospital
from services.cli.token import token_for
from shared.auth import SCOPE_PREDICT, SCOPE_SUBMIT, SCOPE_SUBSCRIBE
from shared.settings import Settings

TASK = "heart_disease"
CDS_SERVICE = "aimass-heart-disease"
SUBSCRIPTION_TOPIC = "urn:aimass:SubscriptionTopic:risk-assessment"  # report's one topic (docs/report.md)
MRN = {"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}


class DoorFailed(Exception):
    """A door did not answer as it should; the message says which and what to look at."""


@dataclass
class DoorsSeen:
    """What each door answered, for the summary."""

    lines: list[str] = field(default_factory=list)

    def add(self, door: str, line: str) -> None:
        self.lines.append(f"  {door:<10} {line}")

    def render(self) -> str:
        return "\n".join(["", "Front doors (each used once, as a hospital or an EHR uses it):", *self.lines])


class Receiver:
    """A hospital's rest-hook endpoint: collects each notification it is sent."""

    def __init__(self) -> None:
        self.bundles: list[dict[str, Any]] = []
        received = self.bundles

        class Hook(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                received.append(json.loads(self.rfile.read(int(self.headers.get("content-length", 0)))))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *_: object) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/aimass-results"

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def risk_assessments(self) -> list[dict[str, Any]]:
        return [e["resource"] for b in self.bundles for e in b.get("entry", []) if _is_risk(e)]


def _is_risk(entry: dict[str, Any]) -> bool:
    return entry.get("resource", {}).get("resourceType") == "RiskAssessment"


async def use_doors(settings: Settings, mllp_ports: dict[str, int], wait_seconds: float) -> DoorsSeen:
    seen = DoorsSeen()
    # New encounters of known patients, a day after the run's: new clinical data, nothing clean would drop.
    documents = records_by_hospital(3, start=datetime.now(UTC).replace(microsecond=0) + timedelta(days=1))
    tokens = {
        (h, s): await asyncio.to_thread(token_for, settings, h, s)
        for h, s in [
            ("cleveland", SCOPE_SUBSCRIBE),
            ("hungary", SCOPE_SUBSCRIBE),
            ("cleveland", SCOPE_SUBMIT),
            ("cleveland", SCOPE_PREDICT),
        ]
    }
    report, ingest = settings.public_url("report"), settings.public_url("ingest")
    with Receiver() as receiver:
        async with httpx.AsyncClient(timeout=30) as client:
            subscriptions = {
                h: await _subscribe(client, report, receiver.endpoint, tokens[(h, SCOPE_SUBSCRIBE)])
                for h in ("cleveland", "hungary")
            }
            try:
                await _mllp(seen, mllp_ports, documents["hungary"][0])
                await _fhir_rest(seen, client, ingest, documents["cleveland"][0], tokens[("cleveland", SCOPE_SUBMIT)])
                await _predict(seen, client, ingest, documents["cleveland"][1], tokens[("cleveland", SCOPE_PREDICT)])
                await _delivered(seen, receiver, wait_seconds)
                await _cds(seen, client, report, documents["cleveland"][0], tokens[("cleveland", SCOPE_PREDICT)])
            finally:
                for hospital, subscription_id in subscriptions.items():
                    await client.delete(
                        f"{report}/fhir/Subscription/{subscription_id}",
                        headers=_bearer(tokens[(hospital, SCOPE_SUBSCRIBE)]),
                    )
    return seen


def _bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


async def _subscribe(client: httpx.AsyncClient, report: str, endpoint: str, token: str) -> str:
    body = {
        "resourceType": "Subscription",
        "status": "requested",
        "reason": "AI Mass results into our EHR (the demo)",
        "criteria": SUBSCRIPTION_TOPIC,
        "channel": {"type": "rest-hook", "endpoint": endpoint, "payload": "application/fhir+json"},
    }
    answer = await client.post(f"{report}/fhir/Subscription", json=body, headers=_bearer(token))
    if answer.status_code != 201:
        raise DoorFailed(
            f"report refused the subscription ({answer.status_code}: {answer.text[:300]}); see var/log/report.log"
        )
    return str(answer.json()["id"])


async def _mllp(seen: DoorsSeen, ports: dict[str, int], document: dict[str, Any]) -> None:
    port = ports.get("hungary")
    if port is None:
        raise DoorFailed("ingest has no MLLP listener for hungary (its /readyz mllp_ports); see var/log/ingest.log")
    control_id = f"demo-{uuid.uuid4().hex[:12]}"
    segments = formats.hl7_oru(document).split("\r")
    msh = segments[0].split("|")
    msh[9] = control_id
    segments[0] = "|".join(msh)
    reader, writer = await open_hl7_connection("127.0.0.1", port)
    try:
        started = time.perf_counter()
        writer.writemessage(hl7.parse("\r".join(segments)))
        await writer.drain()
        ack = await asyncio.wait_for(reader.readmessage(), 30)
        elapsed = (time.perf_counter() - started) * 1000
    finally:
        writer.close()
        await writer.wait_closed()
    code = str(ack.segment("MSA")(1))
    if code != "AA":
        raise DoorFailed(f"hungary's ORU^R01 got {code} over MLLP: {ack}; see var/log/ingest.log")
    seen.add(
        "MLLP",
        f"hungary's engine → 127.0.0.1:{port}: ORU^R01 {control_id} → AA in {elapsed:.0f} ms "
        "(sent once the broker had it)",
    )


async def _fhir_rest(
    seen: DoorsSeen, client: httpx.AsyncClient, ingest: str, document: dict[str, Any], token: str
) -> None:
    body = json.dumps(formats.fhir_bundle(document)).encode()
    headers = {**_bearer(token), "content-type": "application/fhir+json"}
    answer = await client.post(f"{ingest}/fhir", content=body, headers=headers)
    if answer.status_code != 202:
        raise DoorFailed(f"ingest answered POST /fhir with {answer.status_code}: {answer.text[:300]}")
    seen.add("FHIR REST", f"cleveland's EHR → POST {ingest}/fhir (a Bundle) → 202, event {answer.json()['id']}")


async def _predict(
    seen: DoorsSeen, client: httpx.AsyncClient, ingest: str, document: dict[str, Any], token: str
) -> None:
    body = json.dumps(formats.fhir_bundle(document)).encode()
    headers = {**_bearer(token), "content-type": "application/fhir+json"}
    answer = await client.post(f"{ingest}/predict/{TASK}", content=body, headers=headers)
    if answer.status_code != 200:
        raise DoorFailed(f"ingest answered POST /predict/{TASK} with {answer.status_code}: {answer.text[:300]}")
    result = answer.json()["results"][0]
    review = " (needs review)" if result["needs_review"] else ""
    seen.add(
        "predict",
        f"cleveland → POST {ingest}/predict/{TASK} → {result['probability']:.0%} risk{review}, "
        f"{len(result['answered'])} models answered, {answer.json()['elapsed_ms']:.0f} ms",
    )


async def _delivered(seen: DoorsSeen, receiver: Receiver, wait_seconds: float) -> None:
    """The MLLP and FHIR REST documents' reports, pushed to the subscribers' endpoint."""
    deadline = time.monotonic() + wait_seconds
    while len(receiver.risk_assessments()) < 2:
        if time.monotonic() > deadline:
            raise DoorFailed(
                f"{len(receiver.risk_assessments())} of 2 rest-hook notifications arrived in {wait_seconds:.0f} s; "
                "see var/log/report.log (aimass_report_deliveries_total on /metrics)"
            )
        await asyncio.sleep(0.2)
    risks = ", ".join(f"{float(r['prediction'][0]['probabilityDecimal']):.0%}" for r in receiver.risk_assessments())
    seen.add(
        "rest-hook", f"2 RiskAssessments ({risks}) pushed to {receiver.endpoint} (the MLLP and FHIR REST patients)"
    )


async def _cds(seen: DoorsSeen, client: httpx.AsyncClient, report: str, document: dict[str, Any], token: str) -> None:
    patient = {
        "resourceType": "Patient",
        "id": "ehr-1",
        "identifier": [{"type": {"coding": [MRN]}, "value": document["patient_id"]}],
    }
    call = {
        "hook": "patient-view",
        "hookInstance": str(uuid.uuid4()),
        "context": {"userId": "Practitioner/demo", "patientId": "ehr-1"},
        "prefetch": {"patient": patient},
    }
    discovery = await client.get(f"{report}/cds-services")
    answer = await client.post(f"{report}/cds-services/{CDS_SERVICE}", json=call, headers=_bearer(token))
    if discovery.status_code != 200 or answer.status_code != 200:
        raise DoorFailed(f"CDS Hooks answered {discovery.status_code}/{answer.status_code}: {answer.text[:300]}")
    cards = answer.json()["cards"]
    services = len(discovery.json()["services"])
    summary = cards[0]["summary"] if cards else "no card"
    seen.add("CDS Hooks", f"{services} services discovered; patient-view for {document['patient_id']} → “{summary}”")
