"""What report keeps per report, and the ports its service layer talks to (implementations in ``adapters/``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict

from services.report.attribution import Scorer
from services.report.subscriptions import PendingDelivery, StoredSubscription
from services.report.view import ReportView
from shared.schemas.models import ModelCard, ModelRef
from shared.schemas.reports import ReportMessage


@dataclass(frozen=True)
class ReportFiles:
    """What is rendered when the report is made; the PDF is rendered from the stored view on first request."""

    html: bytes
    fhir: bytes  # the transaction Bundle, JSON


class ReportEntry(BaseModel):
    """One line of a patient's report list (``GET /patients/{pseudonym}/reports``)."""

    model_config = ConfigDict(frozen=True)

    report_id: str
    record_id: str
    task: str
    hospital: str
    created_at: datetime
    probability: float
    label: int
    verdict: str
    needs_review: bool
    url: str


class ReportStore(Protocol):
    def save(self, view: ReportView, files: ReportFiles, message: ReportMessage, entry: ReportEntry) -> None: ...
    def read(self, report_id: str, kind: str) -> bytes | None:
        """``html``, ``fhir``, or ``pdf`` when one was kept for the report's current view; else ``None``."""

    def view(self, report_id: str) -> ReportView | None: ...
    def keep_pdf(self, view: ReportView, pdf: bytes) -> None: ...
    def for_patient(self, patient: str) -> list[ReportEntry]: ...
    def patients(self, hospital: str | None = None) -> dict[str, list[ReportEntry]]:
        """Every patient's entries (pseudonym -> entries, newest first), only ``hospital``'s when given: the
        per-patient index, not the reports, is what a search across patients reads."""
        ...


class ModelSource(Protocol):
    def card(self, ref: ModelRef) -> ModelCard | None: ...
    def scorer(self, ref: ModelRef) -> Scorer | None: ...


class PatientUnavailable(Exception):
    """The EHR's FHIR server did not give the Patient: ``reason`` says why (never a value it carried)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class PatientSource(Protocol):
    async def patient(self, fhir_server: str, patient_id: str, access_token: str | None) -> dict[str, Any]:
        """``GET {fhir_server}/Patient/{patient_id}`` on the EHR's FHIR server; ``PatientUnavailable`` otherwise."""
        ...


@dataclass(frozen=True)
class DueEntry:
    """A delivery due for a try, as the queue lists it (without reading it)."""

    name: str
    due_at: float
    first_at: float
    subscription_id: str
    report_id: str


@dataclass(frozen=True)
class Claimed:
    """A delivery this process is trying now; ``token`` is the queue's handle on the claim."""

    token: object
    delivery: PendingDelivery


@dataclass(frozen=True)
class Attempt:
    """One rest-hook POST: whether the endpoint took it, the result class (``ok``, ``refused``, ``timeout``,
    ``status``, ``error``) and a short reason a person can act on."""

    ok: bool
    result: str
    detail: str
    seconds: float = 0.0


class RestHook(Protocol):
    async def post(self, endpoint: str, headers: Sequence[str], body: bytes) -> Attempt: ...


class SubscriptionStore(Protocol):
    def save(self, subscription: StoredSubscription) -> None: ...
    def get(self, hospital: str, subscription_id: str) -> StoredSubscription | None: ...
    def of_hospital(self, hospital: str) -> list[StoredSubscription]: ...
    def delete(self, hospital: str, subscription_id: str) -> bool: ...
    def next_event(self, hospital: str, subscription_id: str) -> int: ...
    def set_status(self, hospital: str, subscription_id: str, status: str, error: str | None) -> None: ...


class DeliveryQueue(Protocol):
    def schedule(self, deliveries: list[PendingDelivery]) -> None: ...
    def due(self, now: float) -> list[DueEntry]: ...
    def claim(self, entry: DueEntry, lease_until: float) -> Claimed | None: ...
    def done(self, claimed: Claimed) -> None: ...
    def retry(self, claimed: Claimed, delivery: PendingDelivery) -> None: ...
    def release_expired(self, now: float) -> int: ...
    def pending(self) -> int: ...
