"""What report keeps per report, and the ports its service layer talks to (implementations in ``adapters/``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict

from services.report.attribution import Scorer
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
