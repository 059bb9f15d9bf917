"""From a parsed hospital document to pseudonymized canonical records (pure)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from services.ingest.dates import shift_record
from services.ingest.pseudonym import Pseudonymizer, age_in_years, generalized_age
from shared.schemas import CanonicalRecord, Demographics, ImagingReference, IncomingRecord
from shared.schemas.records import SourceFormat
from shared.topics import derived_event_id


@dataclass(frozen=True)
class Envelope:
    """Where a document came from: the hospital (``ce_source``) and the hospital's message id."""

    hospital: str
    message_id: str
    received_at: datetime


def to_canonical(
    incoming: IncomingRecord,
    envelope: Envelope,
    source_format: SourceFormat,
    pseudonymize: Pseudonymizer,
    index: object = 0,
    imaging: Sequence[ImagingReference] = (),
) -> CanonicalRecord:
    """``index`` names the record's place in its document (0, "row-7", ...): with the hospital and message id it
    makes the record id, so a redelivered document yields the same ids.

    The age comes from the real dates; then every date of the patient's care moves by the patient's offset
    (``dates.shift_record``) and the birth date goes no further."""
    when = incoming.recorded_at or envelope.received_at
    if incoming.birth_date is not None:
        age = age_in_years(incoming.birth_date, when.date())
    else:
        age = generalized_age(incoming.age_years)
    patient = pseudonymize.patient(envelope.hospital, incoming.patient_id)
    record = CanonicalRecord(
        record_id=derived_event_id("ingest", f"{envelope.hospital}/{envelope.message_id}", index),
        patient=patient,
        hospital=envelope.hospital,
        encounter=(
            pseudonymize(envelope.hospital, incoming.encounter_id, "encounter") if incoming.encounter_id else None
        ),
        recorded_at=incoming.recorded_at,
        received_at=envelope.received_at,
        source_format=source_format,
        demographics=Demographics(age_years=age, sex=incoming.sex),
        observations=incoming.observations,
        conditions=incoming.conditions,
        imaging=list(imaging),
    )
    return shift_record(record, pseudonymize.date_shift_days(patient))
