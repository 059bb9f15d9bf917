"""HL7 v2 (``hl7``): ADT^A01/A04/A08 and ORU^R01, one message or several (MLLP-framed or separated by line
breaks) → one record per PID (pure).

A bad OBX is rejected alone (its MSH, PID, PV1 and OBR go with it, so the part can be replayed) while the other
results go on; a message that cannot be read at all is rejected alone when others in the same document can.
PID-5 (name), PID-11 (address), PID-13 (phone) and the other identifying fields are never read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import hl7
from pydantic import ValidationError

from services.ingest import hl7v2_fields as fields
from services.ingest.parsed import ParseContext, ParsedDocument, ParsedRecord, PartBudget, RejectedPart
from shared.errors import RejectedInput, describe_validation_error
from shared.schemas import IncomingRecord, Observation

HL7_CONTENT_TYPE = "x-application/hl7-v2+er7"
SUPPORTED_EVENTS = {("ADT", "A01"), ("ADT", "A04"), ("ADT", "A08"), ("ORU", "R01")}
_LINE_BREAKS = re.compile(r"\r\n|\r|\n")
# python-hl7 makes an object per field, component and repetition (~450 bytes, ~5 µs each): a 5 MB field of "A^A^..."
# would take a gigabyte and a quarter of a minute. Real documents at the 2 MB message limit stay well below this.
MAX_DELIMITERS = 500_000


@dataclass
class _Patient:
    msh: Any
    pid: Any
    pv1: Any = None
    obr: Any = None
    encounter_id: str | None = None
    recorded_at: datetime | None = None
    observations: list[Observation] = field(default_factory=list)

    def context(self) -> list[Any]:
        """MSH, PID, PV1 and OBR: what a rejected OBX needs to be a message again."""
        return [s for s in (self.msh, self.pid, self.pv1, self.obr) if s is not None]


def split_messages(text: str) -> list[str]:
    """The messages in a document: MLLP frames (0x0B … 0x1C 0x0D) or plain, segments split on CR, LF or CRLF."""
    segments = [s for s in _LINE_BREAKS.split(text.replace("\x0b", "\r").replace("\x1c", "\r")) if s.strip()]
    if not segments or not segments[0].startswith("MSH"):
        raise RejectedInput("HL7: the first segment is not MSH", "malformed")
    messages: list[list[str]] = []
    for segment in segments:
        if segment.startswith("MSH"):
            messages.append([])
        messages[-1].append(segment)
    return ["\r".join(m) for m in messages]


def _decode(document: bytes) -> str:
    try:
        return document.decode("utf-8")
    except UnicodeDecodeError:
        return document.decode("latin-1")  # HL7 v2's default character set (MSH-18 empty) is 8859-1 compatible


def _parse(text: str, where: str) -> Any:
    if len(text) < 8 or text[3] in "\r\n" or text[3] == text[4]:
        raise RejectedInput(f"{where} MSH-1/MSH-2: field separator and encoding characters missing", "malformed")
    try:
        return hl7.parse(text)
    except Exception as error:  # hl7 raises IndexError and friends on malformed input
        raise RejectedInput(f"{where}: cannot be parsed as HL7 v2 ({type(error).__name__})", "malformed") from None


def _message_type(msh: Any, where: str) -> tuple[str, str]:
    kind = (fields.value(msh, 9, 1, 1).upper(), fields.value(msh, 9, 1, 2).upper())
    if kind not in SUPPORTED_EVENTS:
        shown = "^".join(k for k in kind if k) or "empty"
        raise RejectedInput(
            f"{where} MSH-9: message type {shown[:20]} is not supported (ADT^A01, ADT^A04, ADT^A08, ORU^R01)",
            "unsupported",
        )
    return kind


def _read_message(text: str, where: str, key: str, budget: PartBudget) -> tuple[list[ParsedRecord], list[RejectedPart]]:
    message = _parse(text, where)
    msh = message.segments("MSH")[0]
    _message_type(msh, where)
    sent_at = fields.timestamp(fields.value(msh, 7), f"{where} MSH-7")
    patients: list[_Patient] = []
    rejected: list[RejectedPart] = []
    order_time: datetime | None = None
    obx_count = 0
    for segment in message:
        name = str(segment[0]).strip()
        if name == "PID":
            patients.append(_Patient(msh, segment))
        elif name in ("PV1", "OBR", "OBX") and not patients:
            raise RejectedInput(f"{where} {name}: comes before any PID, so the patient is unknown", "schema")
        elif name == "PV1":
            patients[-1].encounter_id = fields.value(segment, 19)[:256] or None
            patients[-1].recorded_at = fields.timestamp(fields.value(segment, 44), f"{where} PV1-44")
            patients[-1].pv1 = segment
        elif name == "OBR":
            order_time = fields.timestamp(fields.value(segment, 7), f"{where} OBR-7")
            patients[-1].recorded_at = patients[-1].recorded_at or order_time
            patients[-1].obr = segment
        elif name == "OBX":
            obx_count += 1
            current = patients[-1]
            obx_where = f"{where} OBX[{obx_count}]"
            try:
                found = fields.observation(segment, obx_where, order_time or current.recorded_at or sent_at)
            except (RejectedInput, ValidationError) as problem:
                rejected.append(budget.spend(_obx_part(current, segment, obx_count, problem, obx_where)))
                continue
            if found is not None:
                current.observations.append(found)
    if not patients:
        raise RejectedInput(f"{where} PID: missing, so the patient is unknown", "schema")
    records = [ParsedRecord(_record(p, where, sent_at), f"{key}/patient-{i}") for i, p in enumerate(patients)]
    return records, rejected


def _record(patient: _Patient, where: str, sent_at: datetime | None) -> IncomingRecord:
    pid = patient.pid
    try:
        return IncomingRecord(
            patient_id=fields.patient_identifier(pid),
            encounter_id=patient.encounter_id,
            recorded_at=patient.recorded_at or sent_at,
            birth_date=fields.birth_date(fields.value(pid, 7), f"{where} PID-7"),
            sex=fields.SEX.get(fields.value(pid, 8).upper()[:1], "unknown"),
            observations=patient.observations,
        )
    except ValidationError as error:
        raise RejectedInput(f"{where} {describe_validation_error(error)}", "schema") from None


def _obx_part(patient: _Patient, obx: Any, number: int, problem: Exception, where: str) -> RejectedPart:
    reason, reason_class = (
        (problem.reason, problem.reason_class)
        if isinstance(problem, RejectedInput)
        else (f"{where}: {describe_validation_error(problem)}", "schema")
    )
    text = "\r".join(str(s) for s in [*patient.context(), obx])
    return RejectedPart(f"obx-{number}", reason, reason_class, text.encode(), HL7_CONTENT_TYPE)


def _bounded(text: str) -> str:
    delimiters = sum(text.count(c) for c in set(text[3:8]) | set("|^~\\&"))
    if delimiters > MAX_DELIMITERS:
        raise RejectedInput(
            f"HL7: more than {MAX_DELIMITERS} fields, components and repetitions in one document "
            "(too many to parse; split the document)",
            "oversized",
        )
    return text


def parse_hl7v2(document: bytes, _: ParseContext) -> ParsedDocument:
    messages = split_messages(_bounded(_decode(document)))
    budget = PartBudget(document, "HL7")
    if len(messages) == 1:
        records, rejected = _read_message(messages[0], "HL7", "message-0", budget)
    else:
        records, rejected = [], []
        for index, text in enumerate(messages):
            try:
                found, parts = _read_message(text, f"HL7 message[{index}]", f"message-{index}", budget)
            except RejectedInput as problem:
                rejected.append(
                    RejectedPart(
                        f"message-{index}", problem.reason, problem.reason_class, text.encode(), HL7_CONTENT_TYPE
                    )
                )
                continue
            records.extend(found)
            rejected.extend(parts)
    if not records:
        raise RejectedInput(
            "; ".join(r.reason for r in rejected[:3]) + f" (all {len(rejected)} parts rejected)",
            rejected[0].reason_class if rejected else "empty",
        )
    return ParsedDocument(records=records, rejected=rejected)
