"""CDS Hooks over HTTP (thin: the cards are ``services.report.cds``'s):

- ``GET /cds-services``: the discovery document, open (it carries no patient data, as the spec intends);
- ``POST /cds-services/{service_id}``: a hook call, with a token of the EHR's hospital granting
  ``system/RiskAssessment.read``.

The EHR names the patient by its own id. The service finds the patient's reports through the pseudonym ingest made
for the same patient: the keyed HMAC of (the token's hospital, the patient's MRN), the MRN read from the Patient the
EHR prefetched (or read from its FHIR server, or, lacking both, ``context.patientId`` itself). Another hospital's
token therefore finds no report of this patient: the same id there is another pseudonym. Each call is audited (the
patient by pseudonym) before it is answered.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping

from services.report.cds import (
    ORDER_SELECT,
    CdsRequestError,
    CdsResponse,
    discovery,
    hook_of,
    no_report_card,
    order_select_cards,
    patient_identifier,
    patient_view_card,
    prefetched_patient,
    read_request,
    selected_codes,
)
from services.report.metrics import ReportMetrics
from services.report.ports import PatientSource, PatientUnavailable, ReportStore
from services.report.routes import Audit, audited
from services.report.view import ReportView
from shared.auth import SCOPE_SUBMIT, Principal
from shared.http import Refused, Request, Response
from shared.links import LinkSigner
from shared.pseudonyms import pseudonym
from shared.tasks import TaskSpec


class CdsRoutes:
    def __init__(
        self,
        tasks: Mapping[str, TaskSpec],
        store: ReportStore,
        pseudonym_key: bytes,
        links: LinkSigner,
        audit: Audit,
        base_url: str,
        patients: PatientSource,
        clock: Callable[[], float] = time.time,
        metrics: ReportMetrics | None = None,
    ) -> None:
        self.tasks = tasks
        self.store = store
        self._key = pseudonym_key
        self.links = links
        self.audit = audit
        self.base_url = base_url.rstrip("/")
        self.patients = patients
        self.clock = clock
        self.metrics = metrics
        self._discovery = discovery(tasks).model_dump(mode="json", exclude_none=True)

    async def discovery(self, _: Request) -> Response:
        return Response.json(self._discovery)

    async def call(self, request: Request) -> Response:
        response, hook, outcome = await self._call(request)
        if self.metrics is not None:
            self.metrics.cds_calls.labels(hook, outcome).inc()
        return response

    async def _call(self, request: Request) -> tuple[Response, str, str]:
        """The answer, the hook and the outcome class (``cards``, ``no_result``, ``invalid``)."""
        found = hook_of(request.params["service_id"], self.tasks)
        if found is None:
            missing = f"no CDS service {request.params['service_id']!r}; see GET /cds-services"
            return _error(404, "not_found", missing), "unknown", "invalid"
        hook, task = found
        try:
            call, context = read_request(request.body, hook)
            patient = prefetched_patient(call, context)
        except CdsRequestError as bad:
            return _error(400, "invalid_request", bad.reason), hook, "invalid"
        principal = request.principal
        assert principal is not None  # the route has a guard
        if principal.hospital is None:
            raise Refused(403, "access_denied", "this token acts for no hospital; call with a token of the EHR's")
        if patient is None and call.fhirServer is not None:
            token = call.fhirAuthorization.access_token if call.fhirAuthorization else None
            try:
                patient = await self.patients.patient(call.fhirServer, context.patientId, token)
            except PatientUnavailable as missing:
                reason = f"no Patient in prefetch, and {missing.reason}"
                return _error(412, "precondition_failed", reason), hook, "invalid"
        identifier = patient_identifier(patient) if patient is not None else context.patientId
        if not identifier:
            return _error(400, "invalid_request", "the Patient has neither an identifier nor an id"), hook, "invalid"
        patient_pseudonym = pseudonym(self._key, principal.hospital, identifier)
        view = await asyncio.to_thread(self._newest, patient_pseudonym, task.name, principal.hospital)
        patient_reference = f"Patient/{context.patientId}"
        if view is None:
            cards = [] if hook == ORDER_SELECT else [no_report_card(task, self.base_url, call.hookInstance)]
        else:
            path, _ = self.links.sign(f"/reports/{view.report_id}", principal, self.clock())
            link = f"{self.base_url}{path}"
            if hook == ORDER_SELECT:
                codes = selected_codes(context)  # type: ignore[arg-type]  # read_request gave the order-select shape
                cards = order_select_cards(view, task, codes, self.base_url, link, call.hookInstance)
            else:
                asking = self._questioning_link(patient_pseudonym, task.name, principal)
                cards = [
                    patient_view_card(view, task, self.base_url, link, patient_reference, call.hookInstance, asking)
                ]
        details = {"hook": hook, "cds-service": request.params["service_id"], "cards": str(len(cards))}
        if view is None:
            await audited(
                self.audit,
                request,
                "search-type",
                f"Patient/{patient_pseudonym}/reports",
                patient_pseudonym,
                details=details,
            )
        else:
            await audited(
                self.audit,
                request,
                "read",
                f"RiskAssessment/{view.report_id}",
                patient_pseudonym,
                description="CDS Hooks cards, with a signed link to the report" if cards else None,
                details=details,
            )
        answer = CdsResponse(cards=cards)
        return (
            Response.json(answer.model_dump(mode="json", exclude_none=True)),
            hook,
            "no_result" if view is None else "cards",
        )

    def _questioning_link(self, patient_pseudonym: str, task: str, principal: Principal) -> str:
        """The patient's questioning page for ``task``, signed for the EHR's client: it may answer there when the
        client may write the hospital's documents (``system/Bundle.write``), else it reads."""
        path, _ = self.links.sign(
            f"/patients/{patient_pseudonym}", principal, self.clock(), answer=principal.allows(SCOPE_SUBMIT)
        )
        patient, _, query = path.partition("?")
        return f"{self.base_url}{patient}/questions/{task}?{query}"

    def _newest(self, patient_pseudonym: str, task: str, hospital: str) -> ReportView | None:
        entries = [e for e in self.store.for_patient(patient_pseudonym) if e.task == task and e.hospital == hospital]
        return self.store.view(entries[0].report_id) if entries else None


def _error(status: int, error: str, description: str) -> Response:
    return Response.json({"error": error, "error_description": description}, status)
