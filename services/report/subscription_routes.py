"""Rest-hook subscriptions over FHIR REST (thin: the rules are ``services.report.subscriptions``'s), each behind a
token with ``system/Subscription.write`` of the hospital whose results it is for:

- ``POST /fhir/Subscription``: a FHIR R4 (backport) Subscription; 201 with the stored one (its id), or 400 with an
  ``OperationOutcome`` saying what to change;
- ``GET /fhir/Subscription``: the hospital's own, as a ``searchset`` Bundle; ``GET /fhir/Subscription/{id}``: one;
- ``DELETE /fhir/Subscription/{id}``: 204; its pending deliveries are dropped (counted ``cancelled``).

The channel's headers are the EHR's secrets: stored with the subscription, sent with each notification, shown as
``***``. Each request is audited (no patient: a subscription names none) before it is answered.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from services.report.ports import SubscriptionStore
from services.report.routes import Audit, audited
from services.report.subscriptions import SubscriptionRejected, as_fhir, new_subscription
from shared.access import rest_event
from shared.http import Refused, Request, Response
from shared.schemas.audit import RESTFUL_INTERACTIONS, Coding
from shared.tasks import TaskSpec

FHIR_JSON = "application/fhir+json"


class SubscriptionRoutes:
    def __init__(
        self,
        tasks: Mapping[str, TaskSpec],
        subscriptions: SubscriptionStore,
        audit: Audit,
        base_url: str,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.tasks = tasks
        self.subscriptions = subscriptions
        self.audit = audit
        self.base_url = base_url.rstrip("/")
        self.clock = clock

    async def create(self, request: Request) -> Response:
        hospital, client = _hospital(request)
        try:
            subscription = new_subscription(request.body, self.tasks, hospital, client, self.clock())
        except SubscriptionRejected as rejected:
            return outcome(400, "invalid", rejected.reason)
        await asyncio.to_thread(self.subscriptions.save, subscription)
        resource = f"Subscription/{subscription.id}"
        await audited(self.audit, request, "create", resource, None, description="rest-hook subscription created")
        answer = Response.json(as_fhir(subscription, self.base_url), 201, FHIR_JSON)
        answer.headers["location"] = f"{self.base_url}/fhir/{resource}"
        return answer

    async def search(self, request: Request) -> Response:
        hospital, _ = _hospital(request)
        found = await asyncio.to_thread(self.subscriptions.of_hospital, hospital)
        await audited(self.audit, request, "search-type", "Subscription", None, details={"count": str(len(found))})
        bundle = {
            "resourceType": "Bundle",
            "type": "searchset",
            "total": len(found),
            "entry": [
                {"fullUrl": f"{self.base_url}/fhir/Subscription/{s.id}", "resource": as_fhir(s, self.base_url)}
                for s in found
            ],
        }
        return Response.json(bundle, 200, FHIR_JSON)

    async def read(self, request: Request) -> Response:
        hospital, _ = _hospital(request)
        subscription = await asyncio.to_thread(self.subscriptions.get, hospital, request.params["subscription_id"])
        if subscription is None:  # another hospital's is not found either: ids are not for guessing
            return outcome(404, "not-found", "no such subscription of this hospital")
        await audited(self.audit, request, "read", f"Subscription/{subscription.id}", None)
        return Response.json(as_fhir(subscription, self.base_url), 200, FHIR_JSON)

    async def delete(self, request: Request) -> Response:
        hospital, _ = _hospital(request)
        subscription_id = request.params["subscription_id"]
        if not await asyncio.to_thread(self.subscriptions.delete, hospital, subscription_id):
            return outcome(404, "not-found", "no such subscription of this hospital")
        event = rest_event(
            "report", request, request.principal, "create", resource=f"Subscription/{subscription_id}"
        ).model_copy(  # shared.access knows read, search and create; a delete is FHIR's own interaction
            update={"subtype": [Coding(system=RESTFUL_INTERACTIONS, code="delete")], "action": "D"}
        )
        try:
            await self.audit(event)
        except Exception:
            raise Refused(503, "temporarily_unavailable", "the access cannot be audited now; try again") from None
        return Response(b"", 204, FHIR_JSON)


def _hospital(request: Request) -> tuple[str, str]:
    principal = request.principal
    assert principal is not None  # every route has a guard
    if principal.hospital is None:
        raise Refused(403, "access_denied", "this token acts for no hospital; subscribe with a token of the hospital")
    return principal.hospital, principal.client_id


def outcome(status: int, code: str, diagnostics: str) -> Response:
    body: dict[str, Any] = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": code, "diagnostics": diagnostics}],
    }
    return Response.json(body, status, FHIR_JSON)
