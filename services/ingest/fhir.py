"""FHIR R4 JSON (``fhir.resources.R4B``): one resource or a Bundle → one record per patient encounter (pure).

Each Bundle entry is validated on its own: a bad entry is rejected with its position ("FHIR Bundle.entry[3]
Observation.valueQuantity.value: ...") while the others go on. Observations are grouped by their subject and
encounter; a BP panel's components become observations of their own. Names, addresses, telecom and the like are
never read; the birth date becomes an age.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError

from services.ingest import fhir_values as values
from services.ingest.jsontext import load_json
from services.ingest.parsed import ParseContext, ParsedDocument, ParsedRecord, PartBudget, RejectedPart
from shared.errors import RejectedInput, describe_validation_error
from shared.schemas import Condition, IncomingRecord, Observation

FHIR_CONTENT_TYPE = "application/fhir+json"
SUPPORTED = ("Patient", "Encounter", "Observation", "Condition", "DiagnosticReport")
CLINICAL = ("Observation", "Condition", "DiagnosticReport")


@dataclass
class _Entry:
    index: int | None  # position in the Bundle; None for a single resource
    resource_type: str
    raw: dict[str, Any]  # the Bundle entry as sent ({"fullUrl": ..., "resource": {...}})
    model: Any = None

    @property
    def where(self) -> str:
        return self.resource_type if self.index is None else f"Bundle.entry[{self.index}] {self.resource_type}"

    @property
    def key(self) -> str:
        return "resource" if self.index is None else f"entry-{self.index}"

    def references(self) -> list[str]:
        resource = self.raw.get("resource") or {}
        names = [self.raw.get("fullUrl")]
        if isinstance(resource.get("id"), str):
            names.append(f"{self.resource_type}/{resource['id']}")
        return [n for n in names if isinstance(n, str) and n]


@dataclass
class _Group:
    patient_id: str
    patient: Any = None
    encounter: Any = None
    encounter_id: str | None = None
    observations: list[Observation] = field(default_factory=list)
    conditions: list[Condition] = field(default_factory=list)


def _entries(payload: Any) -> list[_Entry]:
    if not isinstance(payload, dict) or not isinstance(payload.get("resourceType"), str):
        raise RejectedInput("FHIR: not a resource (no resourceType)", "schema")
    if payload["resourceType"] != "Bundle":
        return [_Entry(None, payload["resourceType"], {"resource": payload})]
    entries = payload.get("entry", [])
    if not isinstance(entries, list):
        raise RejectedInput("FHIR Bundle.entry: expected a list", "schema")
    out = []
    for index, entry in enumerate(entries):
        resource = entry.get("resource") if isinstance(entry, dict) else None
        kind = resource.get("resourceType") if isinstance(resource, dict) else None
        out.append(_Entry(index, kind if isinstance(kind, str) else "resource", entry if resource else {}))
    return out


def _validate(entry: _Entry) -> Any:
    resource = entry.raw.get("resource")
    if not isinstance(resource, dict):
        raise RejectedInput(f"FHIR {entry.where}: no resource", "schema")
    try:
        return get_fhir_model_class(entry.resource_type).model_validate(resource)
    except ValidationError as error:
        raise RejectedInput(f"FHIR {describe_validation_error(error, f'{entry.where}.')}", "schema") from None
    except Exception as error:  # fhir.resources raises plain errors on some malformed shapes
        raise RejectedInput(
            f"FHIR {entry.where}: not a valid {entry.resource_type} ({type(error).__name__})", "schema"
        ) from None


def _part(entry: _Entry, rejected: RejectedInput, everything: dict[str, _Entry]) -> RejectedPart:
    """The rejected entry as a Bundle of its own, with the Patient and Encounter it points to, for replay."""
    resource = entry.raw.get("resource") or {}
    context = []
    for name in ("subject", "encounter"):
        reference = resource.get(name, {}).get("reference") if isinstance(resource.get(name), dict) else None
        target = everything.get(reference) if isinstance(reference, str) else None
        if target is not None and target is not entry and target.raw not in context:
            context.append(target.raw)
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [*context, entry.raw]}
    return RejectedPart(
        entry.key, rejected.reason, rejected.reason_class, json.dumps(bundle).encode(), FHIR_CONTENT_TYPE
    )


def _subject(model: Any, where: str, patients: dict[str, _Entry]) -> tuple[str, str, Any]:
    """(group key, patient identifier, Patient model or None) of a resource's subject."""
    subject = getattr(model, "subject", None)
    if subject is None:
        raise RejectedInput(f"FHIR {where}.subject: required to tell whose it is", "schema")
    if subject.reference and subject.reference in patients:
        patient = patients[subject.reference]
        return patient.key, values.patient_identifier(patient.model) or "", patient.model
    if subject.identifier is not None and subject.identifier.value:
        return f"identifier:{subject.identifier.value}", subject.identifier.value, None
    raise RejectedInput(
        f"FHIR {where}.subject: references no valid Patient in the Bundle and has no identifier", "reference"
    )


def _encounter(model: Any, encounters: dict[str, _Entry]) -> tuple[str | None, Any, str | None]:
    reference = model.encounter.reference if getattr(model, "encounter", None) is not None else None
    if reference is None:
        return None, None, None
    if reference in encounters:
        entry = encounters[reference]
        identifiers = [i.value for i in entry.model.identifier or [] if i.value]
        return entry.key, entry.model, identifiers[0] if identifiers else entry.model.id or reference
    return reference, None, reference


def _content(entry: _Entry) -> tuple[list[Observation], list[Condition]]:
    where = f"FHIR {entry.where}"
    if entry.resource_type == "Observation":
        return values.observations_of(entry.model, where), []
    if entry.resource_type == "Condition":
        return [], [values.condition_of(entry.model, where)]
    if entry.resource_type == "DiagnosticReport":
        return values.report_findings(entry.model, where), []
    return [], []


def _record(group: _Group) -> IncomingRecord:
    patient = group.patient
    period = group.encounter.period if group.encounter is not None else None
    times = [o.time for o in group.observations if o.time is not None]
    recorded: datetime | None = (values.as_datetime(period.start) if period is not None else None) or (
        min(times) if times else None
    )
    return IncomingRecord(
        patient_id=group.patient_id,
        encounter_id=group.encounter_id,
        recorded_at=recorded,
        birth_date=values.approximate_birth_date(patient.birthDate) if patient is not None else None,
        sex=values.SEX.get(patient.gender or "unknown", "unknown") if patient is not None else "unknown",
        observations=group.observations,
        conditions=group.conditions,
    )


def parse_fhir(document: bytes, _: ParseContext) -> ParsedDocument:
    entries = _entries(load_json(document, "FHIR"))
    budget = PartBudget(document, "FHIR")
    everything = {name: e for e in entries for name in e.references()}
    rejected: list[RejectedPart] = []
    valid: list[_Entry] = []
    for entry in (e for e in entries if e.resource_type in SUPPORTED or e.resource_type == "resource"):
        try:
            entry.model = _validate(entry)
            if entry.resource_type == "Patient" and not values.patient_identifier(entry.model):
                raise RejectedInput(f"FHIR {entry.where}.identifier: no identifier or id to pseudonymize", "schema")
            valid.append(entry)
        except RejectedInput as problem:
            if entry.index is None:
                raise
            rejected.append(budget.spend(_part(entry, problem, everything)))
    patients = {name: e for e in valid if e.resource_type == "Patient" for name in e.references()}
    encounters = {name: e for e in valid if e.resource_type == "Encounter" for name in e.references()}

    groups: dict[tuple[str, str | None], _Group] = {}
    for patient in (e for e in valid if e.resource_type == "Patient"):
        groups[(patient.key, None)] = _Group(values.patient_identifier(patient.model) or "", patient.model)
    for entry in (e for e in valid if e.resource_type in ("Encounter", *CLINICAL)):
        try:
            patient_key, patient_id, patient_model = _subject(entry.model, entry.where, patients)
            if entry.resource_type == "Encounter":
                encounter_key, encounter, encounter_id = _encounter_itself(entry)
            else:
                encounter_key, encounter, encounter_id = _encounter(entry.model, encounters)
            observations, conditions = _content(entry)
        except RejectedInput as problem:
            if entry.index is None:
                raise
            rejected.append(budget.spend(_part(entry, problem, everything)))
            continue
        group = groups.pop((patient_key, None), None) if encounter_key is not None else None
        group = groups.setdefault((patient_key, encounter_key), group or _Group(patient_id, patient_model))
        group.encounter = group.encounter or encounter
        group.encounter_id = group.encounter_id or encounter_id
        group.observations.extend(observations)
        group.conditions.extend(conditions)

    records = [ParsedRecord(_record(g), f"{p}|{e or '-'}") for (p, e), g in groups.items()]
    if not records:
        if rejected:
            raise RejectedInput(
                "; ".join(r.reason for r in rejected[:3]) + f" (all {len(rejected)} entries rejected)",
                rejected[0].reason_class,
            )
        raise RejectedInput(
            "FHIR: nothing to ingest (no Patient, Encounter, Observation, Condition or DiagnosticReport)", "empty"
        )
    return ParsedDocument(records=records, rejected=rejected)


def _encounter_itself(entry: _Entry) -> tuple[str, Any, str | None]:
    identifiers = [i.value for i in entry.model.identifier or [] if i.value]
    return entry.key, entry.model, identifiers[0] if identifiers else entry.model.id or entry.key
