"""Access audit events (pure): each read of patient data, each refusal and each token decision as a FHIR R4
AuditEvent the way IHE Basic Audit Log Patterns (BALP) fills one: the client as requesting agent with its network
address and the token used, the answering service as second agent and as observer, the resource and the patient's
pseudonym as entities. ``shared.service.Service.audit`` publishes them on ``audit``."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Literal

from shared.auth import Principal
from shared.http import Refused, Request
from shared.schemas.audit import (
    CLIENT_SYSTEM,
    DCM,
    ENTITY_TYPES,
    EVENT_TYPES,
    OBJECT_ROLES,
    PSEUDONYM_SYSTEM,
    RESTFUL_INTERACTIONS,
    AccessEvent,
    AuditAgent,
    AuditEntity,
    AuditEntityDetail,
    AuditEventOutcome,
    AuditNetwork,
    AuditSource,
    CodeableConcept,
    Coding,
    Identifier,
    Reference,
)

Interaction = Literal["read", "search-type", "create", "operation"]
REST = Coding(system=EVENT_TYPES, code="rest", display="Restful Operation")
AUTHENTICATION = Coding(system=DCM, code="110114", display="User Authentication")
LOGIN = Coding(system=DCM, code="110122", display="Login")
SOURCE_ROLE = CodeableConcept(coding=[Coding(system=DCM, code="110153", display="Source Role ID")])
DESTINATION_ROLE = CodeableConcept(coding=[Coding(system=DCM, code="110152", display="Destination Role ID")])
APPLICATION_SERVER = Coding(
    system="http://terminology.hl7.org/CodeSystem/security-source-type", code="4", display="Application Server"
)
PERSON = Coding(system=ENTITY_TYPES, code="1", display="Person")
SYSTEM_OBJECT = Coding(system=ENTITY_TYPES, code="2", display="System Object")
PATIENT_ROLE = Coding(system=OBJECT_ROLES, code="1", display="Patient")
RESOURCE_ROLE = Coding(system=OBJECT_ROLES, code="4", display="Domain Resource")
QUERY_ROLE = Coding(system=OBJECT_ROLES, code="24", display="Query")
ACTIONS = {"read": "R", "search-type": "E", "create": "C", "operation": "E"}
OUTCOME_OF_STATUS = {401: "4", 403: "4", 429: "4", 503: "8"}


def _client(principal: Principal | None, request: Request, fallback: str = "unauthenticated") -> AuditAgent:
    name = principal.client_id if principal is not None else fallback
    return AuditAgent(
        type=SOURCE_ROLE,
        who=Reference(
            identifier=Identifier(system=CLIENT_SYSTEM, value=name),
            display=f"{name} for {principal.hospital}" if principal and principal.hospital else None,
        ),
        requestor=True,
        network=AuditNetwork(address=request.client) if request.client else None,
        policy=[f"urn:aimass:{principal.via}:{principal.token_id}"] if principal and principal.token_id else [],
    )


def _server(service: str) -> AuditAgent:
    return AuditAgent(type=DESTINATION_ROLE, who=Reference(display=f"aimass/{service}"), requestor=False)


def _source(service: str) -> AuditSource:
    return AuditSource(observer=Reference(display=f"aimass/{service}"), type=[APPLICATION_SERVER])


def _entities(resource: str | None, patient: str | None, details: dict[str, str]) -> list[AuditEntity]:
    entities = []
    if resource is not None:
        extra = [AuditEntityDetail(type=k, valueString=v) for k, v in details.items()]
        entities.append(
            AuditEntity(what=Reference(reference=resource), type=SYSTEM_OBJECT, role=RESOURCE_ROLE, detail=extra)
        )
    if patient is not None:
        entities.append(
            AuditEntity(
                what=Reference(identifier=Identifier(system=PSEUDONYM_SYSTEM, value=patient)),
                type=PERSON,
                role=PATIENT_ROLE,
            )
        )
    return entities


def rest_event(
    service: str,
    request: Request,
    principal: Principal | None,
    interaction: Interaction,
    *,
    resource: str | None,
    patient: str | None = None,
    outcome: AuditEventOutcome = "0",
    description: str | None = None,
    details: dict[str, str] | None = None,
    now: datetime | None = None,
) -> AccessEvent:
    """A RESTful read or search of ``resource`` (``DiagnosticReport/<id>``, ``Patient/<pseudonym>/reports``)."""
    return AccessEvent(
        id=str(uuid.uuid4()),
        type=REST,
        subtype=[Coding(system=RESTFUL_INTERACTIONS, code=interaction)],
        action=ACTIONS[interaction],  # type: ignore[arg-type]
        recorded=now or datetime.now(UTC),
        outcome=outcome,
        outcomeDesc=description,
        agent=[_client(principal, request), _server(service)],
        source=_source(service),
        entity=_entities(resource, patient, {"method": request.method, **(details or {})}),
    )


def refusal_event(service: str, request: Request, refused: Refused, now: datetime | None = None) -> AccessEvent:
    """A request a guard turned away: what was asked for (the path), from where, and why."""
    return rest_event(
        service,
        request,
        refused.principal or request.principal,
        "read" if request.method in ("GET", "HEAD") else "create",
        resource=None,
        outcome=OUTCOME_OF_STATUS.get(refused.status, "4"),  # type: ignore[arg-type]
        description=f"{refused.status} {refused.error}: {refused.description}",
        now=now,
    ).model_copy(update={"entity": [_path_entity(request)]})


def _path_entity(request: Request) -> AuditEntity:
    return AuditEntity(
        what=Reference(display=request.path),
        type=SYSTEM_OBJECT,
        role=QUERY_ROLE,
        detail=[AuditEntityDetail(type="method", valueString=request.method)],
    )


def token_event(
    issuer: str,
    request: Request,
    client_id: str,
    hospital: str | None,
    scopes: Sequence[str],
    *,
    token_id: str | None,
    outcome: AuditEventOutcome = "0",
    description: str | None = None,
    now: datetime | None = None,
) -> AccessEvent:
    """A client credentials grant decided by the issuer: which client, for which hospital and scopes."""
    principal = Principal(client_id=client_id, hospital=hospital, scopes=frozenset(scopes), token_id=token_id or "")
    return AccessEvent(
        id=str(uuid.uuid4()),
        type=AUTHENTICATION,
        subtype=[LOGIN],
        action="E",
        recorded=now or datetime.now(UTC),
        outcome=outcome,
        outcomeDesc=description,
        agent=[_client(principal, request), _server(issuer)],
        source=_source(issuer),
        entity=[
            AuditEntity(
                what=Reference(identifier=Identifier(system=CLIENT_SYSTEM, value=client_id)),
                type=SYSTEM_OBJECT,
                role=Coding(system=OBJECT_ROLES, code="13", display="Security Resource"),
                detail=[AuditEntityDetail(type="scope", valueString=" ".join(scopes))],
            )
        ],
    )
