"""HL7 v2 over MLLP: what one received message is, what ingest answers, and the ACK that says so (pure).

A message is judged before it is acknowledged, by the rules the stream applies (``services.ingest.documents``) plus
the ones only a live connection needs (one message per block, a control id to recognise a re-send by, the
MSH-9/11/12 values ingest supports). The verdict says where the message goes — ``ingest.raw``, or the dead-letter
topic with the reason — and which acknowledgements go back (original mode, or enhanced mode by MSH-15/MSH-16).
Reasons name the place (``OBX[1]-5``), never a value: they come from ingest's reader, which never quotes one.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import hl7

from services.ingest import hl7v2_fields as fields
from services.ingest.hl7v2 import SUPPORTED_EVENTS
from shared.errors import RejectedInput

MAX_CONTROL_ID = 199  # MSH-10 is ST(199) since v2.7 (20 before)
VERSION = re.compile(r"2\.[1-9](\.\d+)?")  # HL7 v2.1 .. v2.9, with a patch level (2.3.1, 2.5.1)
PROCESSING_IDS = {"P": "production", "D": "debugging"}
# HL7 table 0357 (message error condition codes), the ones ingest's reasons map to.
SEGMENT_SEQUENCE_ERROR = "100"
REQUIRED_FIELD_MISSING = "101"
DATA_TYPE_ERROR = "102"
VALUE_TOO_LONG = "104"
UNSUPPORTED_MESSAGE_TYPE = "200"
UNSUPPORTED_EVENT_CODE = "201"
UNSUPPORTED_PROCESSING_ID = "202"
UNSUPPORTED_VERSION_ID = "203"
APPLICATION_INTERNAL_ERROR = "207"
ERROR_NAMES = {
    SEGMENT_SEQUENCE_ERROR: "Segment sequence error",
    REQUIRED_FIELD_MISSING: "Required field missing",
    DATA_TYPE_ERROR: "Data type error",
    VALUE_TOO_LONG: "Value too long",
    UNSUPPORTED_MESSAGE_TYPE: "Unsupported message type",
    UNSUPPORTED_EVENT_CODE: "Unsupported event code",
    UNSUPPORTED_PROCESSING_ID: "Unsupported processing id",
    UNSUPPORTED_VERSION_ID: "Unsupported version id",
    APPLICATION_INTERNAL_ERROR: "Application internal error",
}
_LOCATION = re.compile(r"\b(MSH|EVN|PID|PD1|NK1|PV1|PV2|ORC|OBR|OBX|NTE)(?:\[(\d+)\])?(?:-(\d+)(?:\.(\d+))?)?")
_SEGMENTS = re.compile(r"\r\n|\r|\n")
_DATA_TYPE = ("not numeric", "not a finite number", "not an HL7 date", "not a valid")
_REQUIRED = ("required", "missing", "no patient identifier", "needs an identifier", "no identifier")
_SEQUENCE = ("comes before", "first segment is not MSH", "MSH-1/MSH-2", "cannot be parsed")


class Outcome(StrEnum):
    """What became of a message; each maps onto one acknowledgement per mode (``acknowledgements``)."""

    STORED = "stored"  # on ingest.raw: the stream reads it
    INVALID = "invalid"  # content ingest cannot read: on the dead-letter topic, with the reason
    UNSUPPORTED = "unsupported"  # MSH-9, MSH-11 or MSH-12 ingest does not take: on the dead-letter topic
    NOT_STORED = "not_stored"  # the broker did not take it: nothing kept, the sender must re-send


ORIGINAL_CODES = {Outcome.STORED: "AA", Outcome.INVALID: "AE", Outcome.UNSUPPORTED: "AR", Outcome.NOT_STORED: "AR"}
COMMIT_CODES = {Outcome.STORED: "CA", Outcome.INVALID: "CA", Outcome.UNSUPPORTED: "CR", Outcome.NOT_STORED: "CE"}
APPLICATION_CODES = {Outcome.STORED: "AA", Outcome.INVALID: "AE"}  # after CR or CE nothing was accepted to process


@dataclass(frozen=True)
class AckError:
    """One ERR segment: HL7 table 0357 code, where (``OBX^1^5``: segment, sequence, field, repetition, component),
    severity (E error, W warning) and the sentence a person acts on."""

    code: str
    text: str
    location: tuple[str, ...] = ()
    severity: str = "E"


@dataclass(frozen=True)
class MessageHeader:
    """The MSH of a received message, read alone (it is readable when the rest is not)."""

    msh: Any  # the MSH as an hl7.Message of one segment, padded to MSH-16 (hl7's create_ack reads up to MSH-12)
    control_id: str  # MSH-10
    message_type: tuple[str, str]  # MSH-9.1, MSH-9.2
    processing_id: str  # MSH-11.1
    version: str  # MSH-12.1
    accept_ack: str  # MSH-15
    application_ack: str  # MSH-16

    @property
    def enhanced(self) -> bool:
        """Both MSH-15 and MSH-16 empty is original mode; either valued is enhanced mode (HL7 v2, 2.9)."""
        return bool(self.accept_ack or self.application_ack)


@dataclass(frozen=True)
class Verdict:
    """Where a message goes and what is said about it. ``errors`` of an accepted message are warnings (its parts
    the stream will dead-letter alone)."""

    outcome: Outcome
    header: MessageHeader | None
    reason: str = ""
    reason_class: str = ""
    errors: list[AckError] = field(default_factory=list)


def decode(block: bytes) -> str:
    try:
        return block.decode("utf-8")
    except UnicodeDecodeError:
        return block.decode("latin-1")  # HL7 v2's default character set (MSH-18 empty) is 8859-1 compatible


def segments_of(block: bytes) -> list[str]:
    return [s for s in _SEGMENTS.split(decode(block).strip("\r\n\x0b\x1c")) if s.strip()]


def read_header(block: bytes) -> MessageHeader:
    """The message's MSH, or ``RejectedInput`` when there is none to read."""
    segments = segments_of(block)
    first = segments[0].lstrip() if segments else ""
    if not first.startswith("MSH") or len(first) < 8 or first[3] == first[4]:
        raise RejectedInput("HL7: the first segment is not MSH with its field separator and encoding characters")
    separator = first[3]
    padding = max(0, 16 - first.count(separator))  # create_ack reads MSH-3..MSH-12, even when they were not sent
    try:
        msh = hl7.parse(first + separator * padding)
        segment = msh.segment("MSH")
    except Exception:  # hl7 raises IndexError and friends on malformed input
        raise RejectedInput("HL7 MSH: cannot be parsed as HL7 v2", "malformed") from None
    return MessageHeader(
        msh=msh,
        control_id=fields.value(segment, 10),
        message_type=(fields.value(segment, 9, 1, 1).upper(), fields.value(segment, 9, 1, 2).upper()),
        processing_id=fields.value(segment, 11).upper(),
        version=fields.value(segment, 12),
        accept_ack=fields.value(segment, 15).upper(),
        application_ack=fields.value(segment, 16).upper(),
    )


def refusal(header: MessageHeader, segments: Sequence[str]) -> Verdict | None:
    """What a live connection refuses before ingest's reader is asked: ``None`` when nothing."""

    def invalid(code: str, reason: str, *location: str) -> Verdict:
        return Verdict(Outcome.INVALID, header, reason, "malformed", [AckError(code, reason, location)])

    def unsupported(code: str, reason: str, *location: str) -> Verdict:
        return Verdict(Outcome.UNSUPPORTED, header, reason, "unsupported", [AckError(code, reason, location)])

    if sum(1 for s in segments if s.lstrip().startswith("MSH")) > 1:
        return invalid(SEGMENT_SEQUENCE_ERROR, "MLLP: one message per block; this block holds several MSH segments")
    if not header.control_id:
        reason = "HL7 MSH-10: the message control id is required (a re-sent message is recognised by it)"
        return invalid(REQUIRED_FIELD_MISSING, reason, "MSH", "1", "10")
    if len(header.control_id) > MAX_CONTROL_ID or not header.control_id.isprintable():
        reason = f"HL7 MSH-10: the message control id must be at most {MAX_CONTROL_ID} printable characters"
        return invalid(DATA_TYPE_ERROR, reason, "MSH", "1", "10")
    if header.version and not VERSION.fullmatch(header.version):
        reason = "HL7 MSH-12: only HL7 version 2 messages are read (2.1 to 2.9)"
        return unsupported(UNSUPPORTED_VERSION_ID, reason, "MSH", "1", "12")
    if header.processing_id and header.processing_id not in PROCESSING_IDS:
        reason = (
            "HL7 MSH-11: only production (P) and debugging (D) messages are ingested; training (T) and other "
            "messages would become records of real patients"
        )
        return unsupported(UNSUPPORTED_PROCESSING_ID, reason, "MSH", "1", "11")
    if header.message_type not in SUPPORTED_EVENTS:
        known_type = header.message_type[0] in {kind for kind, _ in SUPPORTED_EVENTS}
        code = UNSUPPORTED_EVENT_CODE if known_type else UNSUPPORTED_MESSAGE_TYPE
        reason = "HL7 MSH-9: message type not supported (ADT^A01, ADT^A04, ADT^A08, ORU^R01)"
        return unsupported(code, reason, "MSH", "1", "9")
    return None


def error_code(reason: str, reason_class: str) -> str:
    """The HL7 table 0357 code for one of ingest's reasons."""
    if reason_class == "unsupported":
        return UNSUPPORTED_MESSAGE_TYPE
    if reason_class == "oversized":
        return VALUE_TOO_LONG
    if any(words in reason for words in _DATA_TYPE):
        return DATA_TYPE_ERROR
    if any(words in reason for words in _SEQUENCE):
        return SEGMENT_SEQUENCE_ERROR
    if any(words in reason for words in _REQUIRED) or reason_class == "empty":
        return REQUIRED_FIELD_MISSING
    return SEGMENT_SEQUENCE_ERROR if reason_class == "malformed" else DATA_TYPE_ERROR


def error_location(reason: str) -> tuple[str, ...]:
    """ERR-2 from a reason's place: ``HL7 OBX[2]-5.2 ...`` → (OBX, 2, 5, "", 2); ``HL7 PID-3: ...`` → (PID, 1, 3)."""
    found = _LOCATION.search(reason)
    if found is None:
        return ()
    segment, sequence, position, component = found.groups()
    location = [segment, sequence or "1"]
    if position:
        location.append(position)
        if component:
            location += ["", component]
    return tuple(location)


def ack_error(reason: str, reason_class: str, severity: str = "E") -> AckError:
    return AckError(error_code(reason, reason_class), reason, error_location(reason), severity)


def wanted(condition: str, code: str) -> bool:
    """MSH-15/MSH-16 (HL7 table 0155): AL always, NE never, ER on an error or reject only, SU on success only.
    An empty or unknown condition in enhanced mode is taken as AL: a sender waiting for an answer that never comes
    re-sends forever, one that gets an answer it did not ask for ignores it."""
    success = code in ("AA", "CA")
    return {"NE": False, "ER": not success, "SU": success}.get(condition, True)


def acknowledgement_codes(verdict: Verdict) -> list[str]:
    """The MSA-1 of each acknowledgement that goes back, in order: one in original mode; in enhanced mode the
    commit acknowledgement, then the application acknowledgement, each when MSH-15/MSH-16 asks for it."""
    header = verdict.header
    if header is None or not header.enhanced:
        return [ORIGINAL_CODES[verdict.outcome]]
    codes = []
    commit = COMMIT_CODES[verdict.outcome]
    if wanted(header.accept_ack, commit):
        codes.append(commit)
    application = APPLICATION_CODES.get(verdict.outcome)
    if application is not None and wanted(header.application_ack, application):
        codes.append(application)
    return codes


def control_id(prefix: str, now: datetime) -> str:
    """An acknowledgement's own MSH-10: 20 characters at most (MSH-10 before v2.7)."""
    return f"{prefix}{now:%y%m%d%H%M%S%f}"[:20]


def build_ack(
    header: MessageHeader | None, code: str, errors: Sequence[AckError], now: datetime | None = None
) -> bytes:
    """An ACK (MSH, MSA, an ERR per error) for the message; without a readable MSH, one of ingest's own with an
    empty MSA-2. ERR carries the location (ERR-2), the code (ERR-3, table 0357), the severity (ERR-4) and the
    sentence (ERR-8); ERR-1 and MSA-3 repeat them for receivers of v2.3 and before, which read only those."""
    now = now or datetime.now(UTC)
    own_id = control_id("A" if code.startswith("A") else "C", now)
    if header is None:
        msh = f"MSH|^~\\&|AIMASS|AIMASS|||{now:%Y%m%d%H%M%S}||ACK|{own_id}|P|2.5"
        message = hl7.parse(msh)
        msa = f"MSA|{code}|"
    else:
        message = header.msh
        ack = message.create_ack(code, message_id=own_id)
        # create_ack stamps MSH-7 from its own clock; the ACK is dated by ours, like the one without a header
        ack.segment("MSH").assign_field(f"{now:%Y%m%d%H%M%S}", 7)
        msh = str(ack.segment("MSH"))
        msa = str(ack.segment("MSA"))
    separator, repetition, component, subcomponent = (message.separators[1:] + "~^&")[:4]
    del repetition  # no repeated field is written
    escape = message.escape
    lines = [msh, msa + (f"{separator}{escape(errors[0].text[:80])}" if errors else "")]
    for error in errors:
        name = ERROR_NAMES.get(error.code, "")
        location = component.join(error.location)
        # ERR-1 (ELD) is segment ^ sequence ^ field ^ code: the code is its fourth component even when the place
        # is only a segment, or unknown, so the location is padded to three components
        place = [*error.location[:3], "", "", ""][:3]
        legacy = component.join([*place, subcomponent.join((error.code, name, "HL70357"))])
        err = [
            "ERR",
            legacy,
            location,
            component.join((error.code, name, "HL70357")),
            error.severity,
            "",
            "",
            "",
            escape(error.text),
        ]
        lines.append(separator.join(err))
    return ("\r".join(lines) + "\r").encode("utf-8")


def acknowledgements(verdict: Verdict, now: datetime | None = None) -> list[bytes]:
    """Every ACK that goes back for ``verdict``, in the order they are written."""
    return [build_ack(verdict.header, code, verdict.errors, now) for code in acknowledgement_codes(verdict)]


def event_id(control: str) -> str:
    """The ce_id of a message: its MSH-10, so a re-sent message yields the same event and record ids."""
    return f"mllp/{control}"


def unreadable_event_id(block: bytes) -> str:
    """The ce_id of a message without a usable MSH-10: its bytes' digest (the same bytes, the same dead letter)."""
    return f"mllp/sha256-{hashlib.sha256(block).hexdigest()[:32]}"
