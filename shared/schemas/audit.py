"""The values of ``audit``: ingest's record of each document (``AuditEvent``: who sent what kind, when, which
pseudonyms it produced; ``org.aimass.audit.recorded.v1``) and every access to the platform's data or credentials
(``AccessEvent``, a FHIR R4 AuditEvent; ``org.aimass.access.audited.v1``). Consumers tell them apart by ``ce_type``.

Never an identifier: hospitals, formats, counts, client ids, pseudonyms and reasons only.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

AuditOutcome = Literal["ingested", "partially_ingested", "rejected"]


class AuditEvent(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    audit_id: str = Field(description="stable per source message: a redelivery yields the same id")
    service: str = Field(description="the service that handled the document, e.g. ingest")
    outcome: AuditOutcome
    hospital: str = Field(description="who sent it (ce_source)")
    message_id: str = Field(description="the hospital's message id (ce_id), or topic/partition/offset")
    content_type: str | None = Field(None, description="as declared, or as sniffed")
    source_format: str | None = Field(None, description="fhir, hl7v2, csv, xlsx, json or dicom; none if unknown")
    bytes: int = Field(ge=0)
    received_at: datetime
    records: int = Field(0, ge=0, description="canonical records published")
    rejected_parts: int = Field(0, ge=0, description="entries, rows or messages dead-lettered individually")
    pseudonyms: list[str] = Field(default_factory=list, description="patient pseudonyms of the records")
    record_ids: list[str] = Field(default_factory=list)
    reasons: list[str] = Field(default_factory=list, description="why parts or the whole document were rejected")


# -- access audit: FHIR R4 AuditEvent, as IHE Basic Audit Log Patterns (BALP) fills it -----------------------------

DCM = "http://dicom.nema.org/resources/ontology/DCM"
EVENT_TYPES = "http://terminology.hl7.org/CodeSystem/audit-event-type"
RESTFUL_INTERACTIONS = "http://hl7.org/fhir/restful-interaction"
ENTITY_TYPES = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
OBJECT_ROLES = "http://terminology.hl7.org/CodeSystem/object-role"
NETWORK_IP = "2"
PSEUDONYM_SYSTEM = "urn:aimass:pseudonym"
CLIENT_SYSTEM = "urn:aimass:oauth-client"
AuditAction = Literal["C", "R", "U", "D", "E"]
AuditEventOutcome = Literal["0", "4", "8", "12"]  # success, minor failure (refused), serious failure, major failure


class Coding(BaseModel):
    model_config = ConfigDict(frozen=True)

    system: str
    code: str
    display: str | None = None


class CodeableConcept(BaseModel):
    model_config = ConfigDict(frozen=True)

    coding: list[Coding]


class Identifier(BaseModel):
    model_config = ConfigDict(frozen=True)

    system: str
    value: str


class Reference(BaseModel):
    model_config = ConfigDict(frozen=True)

    reference: str | None = None
    identifier: Identifier | None = None
    display: str | None = None


class AuditNetwork(BaseModel):
    model_config = ConfigDict(frozen=True)

    address: str
    type: str = NETWORK_IP


class AuditAgent(BaseModel):
    model_config = ConfigDict(frozen=True)

    type: CodeableConcept
    who: Reference
    requestor: bool
    network: AuditNetwork | None = None
    policy: list[str] = Field(default_factory=list, description="the access token's id (jti): which grant was used")


class AuditSource(BaseModel):
    model_config = ConfigDict(frozen=True)

    observer: Reference
    type: list[Coding] = Field(default_factory=list)


class AuditEntityDetail(BaseModel):
    model_config = ConfigDict(frozen=True)

    type: str
    valueString: str


class AuditEntity(BaseModel):
    model_config = ConfigDict(frozen=True)

    what: Reference
    type: Coding
    role: Coding
    detail: list[AuditEntityDetail] = Field(default_factory=list)


class AccessEvent(BaseModel):
    """One access to the platform's data or one credential decision, as a FHIR R4 ``AuditEvent``: who (agents:
    the client, with its network address and the token used; the service that answered), what (entities: the
    resource read and the patient's pseudonym), when, outcome and why (``outcomeDesc``). Never an identifier: clients
    are OAuth client ids, patients pseudonyms. ``ce_type`` ``org.aimass.access.audited.v1`` on ``audit``."""

    model_config = ConfigDict(frozen=True)

    resourceType: Literal["AuditEvent"] = "AuditEvent"
    id: str
    type: Coding
    subtype: list[Coding] = Field(default_factory=list)
    action: AuditAction
    recorded: datetime
    outcome: AuditEventOutcome
    outcomeDesc: str | None = None
    agent: list[AuditAgent]
    source: AuditSource
    entity: list[AuditEntity] = Field(default_factory=list)
