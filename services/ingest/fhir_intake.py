"""FHIR REST intake (pure): what a posted Bundle, resource or NDJSON upload must be before the stream's reader sees
it, the event id that makes a re-post harmless, the OperationOutcome that names the element ingest refused, and an
NDJSON bulk upload turned into documents ingest can read.

Event ids: a Bundle with an ``identifier`` (system and value) is that identifier's digest, so the same Bundle posted
again is the same event; anything else is the digest of the bytes as posted, so a client retrying a request whose
answer it lost sends the same event again. Either way the stream derives the same record ids and clean absorbs the
copy. Different bytes are a different event (clean's content de-duplication still catches an identical record).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from services.ingest.jsontext import load_json
from shared.errors import RejectedInput

BUNDLE_TYPES = ("transaction", "batch", "collection", "message")
FHIR_JSON = ("application/fhir+json", "application/json+fhir", "application/json")
NDJSON = ("application/fhir+ndjson", "application/ndjson", "application/x-ndjson")
# ingest's reasons name the element: "FHIR Bundle.entry[3] Observation.valueQuantity.value: ..."
_ELEMENT = re.compile(r"FHIR (?:Bundle\.entry\[(\d+)\] )?([A-Za-z]+)((?:\.[A-Za-z_][A-Za-z0-9_]*|\[\d+\])*)")
_STATUS = {"malformed": 400, "encoding": 400, "oversized": 413}
_ISSUE_TYPE = {
    "malformed": "structure",
    "encoding": "structure",
    "oversized": "too-long",
    "unsupported": "not-supported",
    "empty": "not-supported",
}
_SUBJECT_FIELDS = ("subject", "patient")
PATIENT_GROUPED = ("Encounter", "Observation", "Condition", "DiagnosticReport")


def media_type(content_type: str) -> str:
    return content_type.split(";")[0].strip().lower()


def expressions(reason: str) -> list[str]:
    """FHIRPath of each element a reason names (``Bundle.entry[3].resource.valueQuantity.value``)."""
    found = []
    for entry, resource_type, path in _ELEMENT.findall(reason):
        if entry:
            where = f"Bundle.entry[{entry}].resource" + (path if resource_type != "resource" else "")
        else:
            where = f"{resource_type}{path}" if resource_type != "resource" else "Bundle"
        if where not in found:
            found.append(where)
    return found


def issue(reason: str, reason_class: str, severity: str = "error", where: str | None = None) -> dict[str, Any]:
    """One OperationOutcome issue: the element by FHIRPath (``expression``) and ingest's sentence (``diagnostics``);
    ``where`` is prefixed for a place FHIRPath cannot name (an NDJSON line)."""
    kind = _ISSUE_TYPE.get(reason_class, "required" if "required" in reason.lower() else "invalid")
    found: dict[str, Any] = {
        "severity": severity,
        "code": kind if severity != "information" else "informational",
        "diagnostics": f"{where}: {reason}" if where else reason,
    }
    paths = expressions(reason)
    if paths:
        found["expression"] = paths
    return found


def operation_outcome(issues: Sequence[dict[str, Any]]) -> dict[str, Any]:
    return {"resourceType": "OperationOutcome", "issue": list(issues)}


def status_of(reason_class: str) -> int:
    """400 for what is not JSON at all, 413 for too large, 422 for a resource ingest cannot use (FHIR's
    "unprocessable entity": it parsed, and broke a rule)."""
    return _STATUS.get(reason_class, 422)


def posted_resource(body: bytes, path_type: str | None) -> dict[str, Any]:
    """The posted JSON, checked for what the URL says it is: ``POST /fhir`` a Bundle of an accepted type,
    ``POST /fhir/<type>`` one resource of that type. ``RejectedInput`` names the element otherwise."""
    payload = load_json(body, "FHIR")
    if not isinstance(payload, dict) or not isinstance(payload.get("resourceType"), str):
        raise RejectedInput("FHIR resourceType: required; the body is not a FHIR resource", "schema")
    resource_type = payload["resourceType"]
    if path_type is not None and path_type != resource_type:
        raise RejectedInput(
            f"FHIR {resource_type[:64]}.resourceType: does not match the URL (POST /fhir/{path_type[:64]})", "schema"
        )
    if path_type is None and resource_type != "Bundle":
        raise RejectedInput(
            f"FHIR {resource_type[:64]}.resourceType: POST /fhir takes a Bundle; post one resource to "
            "/fhir/<resourceType>",
            "schema",
        )
    if resource_type == "Bundle":
        bundle_rules(payload)
    return payload


def bundle_rules(bundle: dict[str, Any]) -> None:
    kind = bundle.get("type")
    if kind not in BUNDLE_TYPES:
        raise RejectedInput(
            f"FHIR Bundle.type: must be one of {', '.join(BUNDLE_TYPES)} (a history, searchset or document Bundle is "
            "not a submission)",
            "unsupported",
        )
    entries = bundle.get("entry")
    if kind == "message":
        first = entries[0].get("resource") if isinstance(entries, list) and entries else None
        if not isinstance(first, dict) or first.get("resourceType") != "MessageHeader":
            raise RejectedInput("FHIR Bundle.entry[0]: a message Bundle starts with its MessageHeader", "schema")


def event_id(payload: dict[str, Any], body: bytes) -> str:
    """``fhir/<digest>`` of the Bundle's identifier (system|value) when it has one, else of the bytes posted."""
    identifier = payload.get("identifier") if payload.get("resourceType") == "Bundle" else None
    if isinstance(identifier, dict) and isinstance(identifier.get("value"), str) and identifier["value"].strip():
        name = f"bundle-identifier\x1f{identifier.get('system') or ''}\x1f{identifier['value']}"
        return f"fhir/{hashlib.sha256(name.encode()).hexdigest()[:32]}"
    return f"fhir/{hashlib.sha256(body).hexdigest()[:32]}"


# -- NDJSON bulk upload --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Problem:
    """A line of an upload that is not used, and why."""

    line: int
    reason: str
    reason_class: str


@dataclass
class ImportDocument:
    """A document built from an upload: one line (a Bundle, or a resource that stands alone) or a collection
    Bundle of one patient encounter's lines (the Patient, the Encounter, what references them). ``lines[i]`` is the
    line number of entry i, so the reader's ``entry-i`` parts are told back by line."""

    lines: list[int]
    body: bytes
    event_id: str
    entries: int = 0  # 0: the line as sent; else a Bundle built of ``lines``


@dataclass(eq=False)  # compared by identity: a line is in a group or not, whatever its content
class _Line:
    number: int
    text: bytes
    resource: dict[str, Any]

    @property
    def type(self) -> str:
        return str(self.resource["resourceType"])

    @property
    def reference(self) -> str | None:
        identity = self.resource.get("id")
        return f"{self.type}/{identity}" if isinstance(identity, str) and identity else None

    def points_to(self, name: str) -> str | None:
        target = self.resource.get(name)
        reference = target.get("reference") if isinstance(target, dict) else None
        return reference if isinstance(reference, str) else None


@dataclass
class _Group:
    patient: _Line
    members: list[_Line] = field(default_factory=list)


def ndjson_lines(body: bytes) -> tuple[list[_Line], list[Problem]]:
    lines, problems = [], []
    for number, text in enumerate(body.split(b"\n"), start=1):
        text = text.rstrip(b"\r")
        if not text.strip():
            continue
        try:
            resource = load_json(text, f"NDJSON line {number}")
        except RejectedInput as bad:
            problems.append(Problem(number, bad.reason, bad.reason_class))
            continue
        if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
            problems.append(Problem(number, f"NDJSON line {number}: not a FHIR resource (no resourceType)", "schema"))
            continue
        lines.append(_Line(number, text, resource))
    return lines, problems


def _digest(parts: Iterable[bytes]) -> str:
    hashed = hashlib.sha256()
    for part in parts:
        hashed.update(part + b"\n")
    return f"fhir/{hashed.hexdigest()[:32]}"


def import_documents(body: bytes) -> tuple[list[ImportDocument], list[Problem]]:
    """The documents an NDJSON upload (one resource per line, FHIR Bulk Data's format) becomes, and the lines that
    are not even JSON resources.

    A Bulk Data export references the patient (``Observation.subject = Patient/123``) instead of carrying it, and
    ingest reads a resource whose patient it cannot find as unusable; so each Patient line is gathered with the lines
    that reference it, one document per encounter (the reader makes one record per patient encounter anyway), each
    with the Patient and that Encounter. A line that references no Patient of the upload, and a Bundle, is a
    document of its own. Event ids are the digest of the lines' bytes: the same upload sent again is absorbed."""
    lines, problems = ndjson_lines(body)
    patients = {line.reference: line for line in lines if line.type == "Patient" and line.reference}
    encounters = {line.reference: line for line in lines if line.type == "Encounter" and line.reference}
    groups: dict[tuple[str, str | None], _Group] = {}
    alone: list[_Line] = []
    grouped_patients: set[str] = set()
    for line in lines:
        if line.type == "Patient" and line.reference in patients:
            continue
        subject = next((ref for name in _SUBJECT_FIELDS if (ref := line.points_to(name))), None)
        if line.type not in PATIENT_GROUPED or subject not in patients:
            alone.append(line)
            continue
        encounter = line.reference if line.type == "Encounter" else line.points_to("encounter")
        encounter = encounter if encounter in encounters else None
        group = groups.setdefault((subject, encounter), _Group(patients[subject]))
        if encounter is not None and encounters[encounter] not in group.members and line.type != "Encounter":
            group.members.insert(0, encounters[encounter])
        if line not in group.members:
            group.members.append(line)
        grouped_patients.add(subject)
    documents = []
    for line in sorted([*alone, *(p for r, p in patients.items() if r not in grouped_patients)], key=_number):
        documents.append(ImportDocument([line.number], line.text, _digest([line.text])))
    for group in groups.values():
        members = [group.patient, *group.members]
        bundle = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": m.resource} for m in members]}
        documents.append(
            ImportDocument(
                [m.number for m in members],
                json.dumps(bundle, separators=(",", ":")).encode(),
                _digest(m.text for m in members),
                len(members),
            )
        )
    documents.sort(key=lambda d: d.lines[-1])
    return documents, problems


def _number(line: _Line) -> int:
    return line.number


def lines_of(document: ImportDocument, reason: str, label: str | None = None) -> list[int]:
    """The upload lines a reason is about: the entry a part label (``entry-3``) or a reason names, else all."""
    if document.entries:
        found = re.fullmatch(r"entry-(\d+)", label or "") or re.search(r"Bundle\.entry\[(\d+)\]", reason)
        if found and int(found.group(1)) < len(document.lines):
            return [document.lines[int(found.group(1))]]
    return list(document.lines)


def without_entry(reason: str) -> str:
    """A reason about a built Bundle's entry, told of the line instead (the Bundle is ingest's, not the sender's)."""
    return re.sub(r"Bundle\.entry\[\d+\] ", "", reason)
