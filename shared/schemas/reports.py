"""``reports``: the pointer to a rendered report and the FHIR resources it carries."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class ReportMessage(BaseModel):
    model_config = ConfigDict(frozen=True)

    report_id: str
    record_id: str
    patient: str
    task: str
    summary: str
    risk_assessment: dict[str, Any]
    diagnostic_report: dict[str, Any] | None = None
    url: str
