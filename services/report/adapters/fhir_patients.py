"""The EHR's own FHIR server, for a CDS call whose prefetch lacks the Patient (CDS Hooks' ``fhirServer`` with the
``fhirAuthorization`` the EHR granted for this call): one read of the Patient, nothing else, nothing kept."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx

from services.report.ports import PatientUnavailable

FETCH_TIMEOUT_SECONDS = 5.0


class FhirPatients:
    def __init__(
        self, timeout: float = FETCH_TIMEOUT_SECONDS, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.timeout = timeout
        self.transport = transport

    async def patient(self, fhir_server: str, patient_id: str, access_token: str | None) -> dict[str, Any]:
        headers = {"accept": "application/fhir+json"}
        if access_token:
            headers["authorization"] = f"Bearer {access_token}"
        url = f"{fhir_server.rstrip('/')}/Patient/{quote(patient_id, safe='')}"
        try:
            async with httpx.AsyncClient(timeout=self.timeout, transport=self.transport) as client:
                answer = await client.get(url, headers=headers, follow_redirects=False)
        except httpx.HTTPError as error:
            raise PatientUnavailable(f"the EHR's FHIR server did not answer ({type(error).__name__})") from None
        if answer.status_code != 200:
            raise PatientUnavailable(f"the EHR's FHIR server answered {answer.status_code} for the Patient")
        try:
            resource = answer.json()
        except ValueError:
            raise PatientUnavailable("the EHR's FHIR server answered with something that is not JSON") from None
        if not isinstance(resource, dict) or resource.get("resourceType") != "Patient":
            raise PatientUnavailable("the EHR's FHIR server answered with something that is not a Patient")
        return resource
