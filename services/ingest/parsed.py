"""What a parser returns: records with a stable key, the parts it rejected, and pixel data to store (pure types)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from services.ingest.pseudonym import Pseudonymizer
from services.ingest.table_mapping import TableMapping
from shared.errors import RejectedInput
from shared.schemas import ImagingReference, IncomingRecord

PART_BYTES_FACTOR = 8
PART_BYTES_SLACK = 1 << 20


@dataclass(frozen=True)
class ParsedRecord:
    """One patient encounter. ``key`` names its place in the document (row, entry, message) so that the derived
    record id stays the same when the document is delivered again."""

    incoming: IncomingRecord
    key: object
    imaging: tuple[ImagingReference, ...] = ()


@dataclass(frozen=True)
class RejectedPart:
    """A part of a document (Bundle entry, CSV row, HL7 message or OBX) that cannot be ingested while the rest can.

    ``document`` is that part alone, as a document of its own (with the context it needs, e.g. the CSV header or the
    HL7 MSH and PID), so that it can be replayed once fixed; ``label`` names it ("row-7", "entry-3").
    """

    label: str
    reason: str
    reason_class: str
    document: bytes
    content_type: str


class PartBudget:
    """The bytes the rejected parts of one document may add up to: ``PART_BYTES_FACTOR`` times the document, plus
    ``PART_BYTES_SLACK``. Each part carries the context it needs for replay (the CSV header, the HL7 MSH/PID/OBR, the
    FHIR Patient), so a document with a huge context and many bad parts would otherwise turn into gigabytes of dead
    letters; past the budget the whole document is rejected instead (as one dead letter, nothing lost)."""

    def __init__(self, document: bytes | str, label: str) -> None:
        self.left = PART_BYTES_FACTOR * len(document) + PART_BYTES_SLACK
        self.label = label

    def spend(self, part: RejectedPart) -> RejectedPart:
        self.left -= len(part.document)
        if self.left < 0:
            raise RejectedInput(
                f"{self.label}: its rejected parts, each with its context, would take more than "
                f"{PART_BYTES_FACTOR} times the document as dead letters; rejected whole instead",
                "oversized",
            )
        return part


@dataclass(frozen=True)
class Attachment:
    """Bytes the handler stores under the data dir before publishing the records that reference ``path``."""

    path: Path
    content: bytes


@dataclass(frozen=True)
class ParsedDocument:
    records: list[ParsedRecord] = field(default_factory=list)
    rejected: list[RejectedPart] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)


@dataclass(frozen=True)
class ParseContext:
    """Everything a parser may consult besides the bytes. No I/O: mapping tables are loaded by the service."""

    hospital: str
    pseudonymize: Pseudonymizer
    tables: Mapping[str, TableMapping] = field(default_factory=dict)
    data_root: Path = Path("var/data")
    claim_check_bytes: int = 16_384
