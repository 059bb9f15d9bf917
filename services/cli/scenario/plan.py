"""The demo scenario as messages (pure): who sends what, in which format, and which patients are held out.

Each hospital sends in its own format (``formats.py``): Cleveland FHIR R4 Bundles, Hungary HL7 v2 ORU^R01, VA Long
Beach CSV exports of several rows, Switzerland canonical JSON. Cleveland's radiology also sends pydicom's CT and MR
sample files. A few broken messages show what ingest does with bad input. Per hospital a stratified fifth of the
patients is held out: trained on nothing, published after the models are released, scored, fused and reported.
"""

from __future__ import annotations

import csv
import io
import json
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal

from services.cli.publish import CONTENT_TYPES
from services.cli.scenario.formats import csv_rows, fhir_bundle, hl7_oru, identity

Phase = Literal["training", "held-out", "imaging", "broken"]
FORMAT_OF = {"cleveland": "fhir", "hungary": "hl7v2", "va-long-beach": "csv", "switzerland": "json"}
CSV_ROWS_PER_FILE = 20
HELD_OUT_FRACTION = 0.2
SEED = 20261129
DICOM_FILES = ("CT_small.dcm", "MR_small.dcm")


@dataclass(frozen=True)
class Message:
    hospital: str
    format: str
    phase: Phase
    body: bytes
    ce_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    patients: int = 1
    expect: str = ""  # for broken messages: what ingest should say about it

    @property
    def content_type(self) -> str:
        return CONTENT_TYPES[self.format]


@dataclass(frozen=True)
class PatientDates:
    """The real dates a patient's documents carry, for the PHI scan (ingest shifts or drops every one of them)."""

    birth: date | None
    care: tuple[datetime, ...]


@dataclass
class Scenario:
    training: list[Message]
    held_out: list[Message]
    imaging: list[Message]
    broken: list[Message]
    identifiers: set[str]  # every direct identifier that goes in; none may come out
    dates: dict[str, PatientDates] = field(default_factory=dict)  # "<hospital>/<patient id>": the real dates sent

    def all(self) -> Iterator[Message]:
        yield from self.training
        yield from self.imaging
        yield from self.broken
        yield from self.held_out


def diagnosed(document: dict[str, Any]) -> bool:
    return bool(document.get("conditions"))


def held_out_split(
    documents: list[dict[str, Any]], fraction: float = HELD_OUT_FRACTION, seed: int = SEED
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(training, held out), stratified by diagnosis so a small hospital still holds out both classes."""
    rng = random.Random(seed)
    training: list[dict[str, Any]] = []
    held_out: list[dict[str, Any]] = []
    for positive in (True, False):
        group = sorted((d for d in documents if diagnosed(d) == positive), key=lambda d: d["patient_id"])
        rng.shuffle(group)
        cut = round(len(group) * fraction)
        held_out.extend(group[:cut])
        training.extend(group[cut:])
    return training, held_out


def render(hospital: str, documents: list[dict[str, Any]], phase: Phase) -> list[Message]:
    """The documents as the hospital sends them."""
    fmt = FORMAT_OF[hospital]
    if fmt == "csv":
        return [
            Message(
                hospital,
                fmt,
                phase,
                csv_rows(documents[i : i + CSV_ROWS_PER_FILE]).encode(),
                patients=len(documents[i : i + CSV_ROWS_PER_FILE]),
            )
            for i in range(0, len(documents), CSV_ROWS_PER_FILE)
        ]
    if fmt == "fhir":
        return [Message(hospital, fmt, phase, json.dumps(fhir_bundle(d, hospital)).encode()) for d in documents]
    if fmt == "hl7v2":
        return [Message(hospital, fmt, phase, hl7_oru(d, hospital).encode()) for d in documents]
    return [Message(hospital, fmt, phase, json.dumps(d).encode()) for d in documents]


def identifiers_of(hospital: str, document: dict[str, Any]) -> set[str]:
    """What of this document identifies the patient, in every form it is sent (JSON carries only the MRN)."""
    if FORMAT_OF[hospital] == "json":
        return {document["patient_id"]}
    return set(identity(document).strings())


def dates_of(hospital: str, document: dict[str, Any]) -> PatientDates:
    """The encounter and observation times of a document, and the birth date its format sends (JSON sends an age)."""
    times = [document["recorded_at"], *(o["time"] for o in document.get("observations", []) if o.get("time"))]
    birth = None if FORMAT_OF[hospital] == "json" else identity(document).birth_date
    return PatientDates(birth, tuple(sorted({datetime.fromisoformat(t) for t in times})))


def broken_messages(sample: dict[str, dict[str, Any]]) -> list[Message]:
    """One or two bad messages per format, each built from a real document of that hospital."""
    bundle = fhir_bundle(sample["cleveland"], "cleveland")
    for entry in bundle["entry"]:
        resource = entry["resource"]
        if resource["resourceType"] == "Observation" and "valueQuantity" in resource:
            resource["valueQuantity"]["value"] = "one hundred and forty"
            break
    oru = hl7_oru(sample["hungary"], "hungary")
    table = list(csv.DictReader(io.StringIO(csv_rows([sample["va-long-beach"]]))))
    table[0]["resting_bp_mmhg"] = "high"
    bad_row = io.StringIO()
    writer = csv.DictWriter(bad_row, fieldnames=list(table[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(table)
    negative_age = {**sample["switzerland"], "age_years": -4}
    return [
        Message(
            "cleveland",
            "fhir",
            "broken",
            json.dumps(bundle).encode(),
            expect="one Observation whose value is not a number: that entry alone is dead-lettered",
        ),
        Message(
            "cleveland",
            "fhir",
            "broken",
            json.dumps(bundle).encode()[:300],
            expect="a Bundle cut off in transfer: not JSON",
        ),
        Message(
            "hungary",
            "hl7v2",
            "broken",
            oru.replace("PID|", "PXD|", 1).encode(),
            expect="an ORU without a PID segment: whose results are these?",
        ),
        Message(
            "va-long-beach",
            "csv",
            "broken",
            bad_row.getvalue().encode(),
            expect="a CSV row with 'high' as the blood pressure",
        ),
        Message("switzerland", "json", "broken", json.dumps(negative_age).encode(), expect="a negative age"),
        Message("switzerland", "json", "broken", b"\xff\xfe\x00 not text at all", expect="bytes that are not UTF-8"),
    ]


def dicom_messages(files: dict[str, bytes]) -> list[Message]:
    return [Message("cleveland", "dicom", "imaging", body) for body in files.values()]


def build(documents: dict[str, list[dict[str, Any]]], dicom_files: dict[str, bytes]) -> Scenario:
    """The whole scenario from each hospital's documents (``heart.records_by_hospital``)."""
    training: list[Message] = []
    held_out: list[Message] = []
    identifiers: set[str] = set()
    dates: dict[str, PatientDates] = {}
    for hospital, docs in documents.items():
        train_docs, held_docs = held_out_split(docs)
        training += render(hospital, train_docs, "training")
        held_out += render(hospital, held_docs, "held-out")
        for document in docs:
            identifiers |= identifiers_of(hospital, document)
            dates[f"{hospital}/{document['patient_id']}"] = dates_of(hospital, document)
    sample = {hospital: docs[0] for hospital, docs in documents.items() if docs}
    broken = broken_messages(sample) if len(sample) == len(FORMAT_OF) else []
    return Scenario(training, held_out, dicom_messages(dicom_files), broken, identifiers, dates)
