"""Safe Harbor free text: observation values written by a person are dropped at ingest unless a task allowlists the
observation's code (pure).

Free text is where identifiers hide ("Seen with her husband John at 12 Elm St"): no scrubber finds all of them, so
ingest does not try. What is not free text travels: numbers (``value``), coded values (``value_code``), booleans and
structured numerics (HL7 SN such as ``>5``, ``1:128``, ``10-20``). A text value or a reference range in words is
removed from its observation, which stays with its code and time (so the loss is visible: clean flags a task feature
that needed it as missing) and is counted (``aimass_ingest_free_text_dropped_total``). A task that needs the text of a
code whose answers are controlled words ("Positive") lists the code under ``free_text_codes`` in its task file.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass

from shared.schemas import Observation

# Closed vocabularies that reach value_text: FHIR valueBoolean.
CLOSED_WORDS = frozenset({"true", "false"})
_NUMBER = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)"
# A comparison with a number, a range or a ratio (HL7 SN: <comparator>^<num1>^<separator>^<num2>): no letter, so no
# word. A plain number is not among them: a numeric result arrives as a number (NM, valueQuantity), so digits in a
# text field are something else (a phone number, a record number, a date such as 20260105). A reference range with a
# unit in words ("3.5-5.0 mmol/L") counts as text: a unit cannot be told from a name by its letters ("5 John").
_SEPARATOR = r"\s*(?:-|:|/|\+)\s*"
STRUCTURED = re.compile(rf"(?:<=|>=|<|>|=|≤|≥)\s*{_NUMBER}(?:{_SEPARATOR}{_NUMBER})?|{_NUMBER}{_SEPARATOR}{_NUMBER}")


def is_free_text(text: str) -> bool:
    """Whether ``text`` could carry what a person wrote: anything but a closed word or a structured numeric."""
    value = text.strip()
    return bool(value) and value.lower() not in CLOSED_WORDS and STRUCTURED.fullmatch(value) is None


@dataclass(frozen=True)
class Stripped:
    observations: list[Observation]
    dropped: int  # text values and reference ranges removed


def strip_free_text(observations: Iterable[Observation], allowed: Collection[tuple[str, str]]) -> Stripped:
    """The observations without their free text, except those whose (system, code) is in ``allowed``."""
    out: list[Observation] = []
    dropped = 0
    for observation in observations:
        if (observation.code.system, observation.code.code) in allowed:
            out.append(observation)
            continue
        update: dict[str, None] = {}
        if observation.value_text is not None and is_free_text(observation.value_text):
            update["value_text"] = None
        if observation.reference_range is not None and is_free_text(observation.reference_range):
            update["reference_range"] = None
        dropped += len(update)
        out.append(observation.model_copy(update=update) if update else observation)
    return Stripped(out, dropped)
