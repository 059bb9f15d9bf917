"""One UCI heart-disease document (``heart.canonical_record``) as each hospital really sends it.

Cleveland sends FHIR R4 Bundles, Hungary HL7 v2.5 ORU^R01 messages, VA Long Beach CSV exports with its own column
names and cholesterol in mmol/L (``deploy/hospitals/va-long-beach.yaml`` maps them), Switzerland the canonical JSON.
The UCI data carry no identities: each patient gets a synthetic name, phone number and birth date (consistent with
the recorded age) so that ingest has real identifiers to strip. They are made up, deterministic per record.
"""

from __future__ import annotations

import csv
import io
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from shared.schemas.records import AIMASS_CODES, LOINC, SNOMED

UCUM = "http://unitsofmeasure.org"
BP_PANEL = {"system": LOINC, "code": "85354-9", "display": "Blood pressure panel with all children optional"}
SYSTOLIC = "8480-6"
CHOLESTEROL_MASS = "2093-3"
MG_DL_PER_MMOL_L = 38.67
HL7_SYSTEMS = {LOINC: "LN", SNOMED: "SCT", AIMASS_CODES: "99AIM"}
_NAMESPACE = uuid.UUID("0b8e6a6e-5d1c-4b8a-9f0e-3c1d2a4b5e6f")
GIVEN = ("Ilona", "Tibor", "Marguerite", "Osvaldo", "Henrike", "Lajos", "Philippa", "Evander", "Rozalia", "Corwin")
FAMILY = (
    "Szabadkai",
    "Okonkwo-Lind",
    "Vantongeren",
    "Kertesz-Abay",
    "Hollingworth",
    "Baranyai",
    "Quintanar",
    "Wetherell",
    "Dravecky",
    "Fairbrook",
    "Ambrozy",
    "Castellvi",
)

# VA Long Beach's export: its column → (our code, what to do with the value).
VA_NUMERIC = {
    "resting_bp_mmhg": "8480-6",
    "max_hr": "max-heart-rate",
    "st_depression_mm": "st-depression",
    "vessels": "major-vessels",
    "diagnosis": "uci-heart-diagnosis",
}
VA_CODED = {
    "chest_pain": "chest-pain-type",
    "rest_ecg": "resting-ecg",
    "st_slope": "st-slope",
    "thal_scan": "thallium-scan",
    "fbs_gt_120": "fasting-glucose-gt-120",
    "exercise_angina": "exercise-angina",
}
VA_YES_NO = {"true": "Y", "false": "N"}
VA_COLUMNS = (
    "patient_no",
    "patient_name",
    "phone",
    "date_of_birth",
    "visit_no",
    "visit_date",
    "gender",
    "resting_bp_mmhg",
    "cholesterol_mmol_l",
    *list(VA_NUMERIC)[1:],
    *VA_CODED,
)


@dataclass(frozen=True)
class Identity:
    """The synthetic identifiers of one patient: ingest must never let any of them through."""

    mrn: str
    given: str
    family: str
    phone: str
    birth_date: date
    street: str

    def strings(self) -> list[str]:
        """Every form in which these identifiers could leak."""
        return [
            self.mrn,
            self.given,
            self.family,
            self.phone,
            self.street,
            self.birth_date.isoformat(),
            self.birth_date.strftime("%Y%m%d"),
        ]


def _number(mrn: str) -> int:
    return int(uuid.uuid5(_NAMESPACE, mrn).int % 1_000_000)


def identity(document: dict[str, Any]) -> Identity:
    """A made-up identity for a document; the birth date gives exactly the document's age on its recorded day."""
    mrn = document["patient_id"]
    n = _number(mrn)
    when = datetime.fromisoformat(document["recorded_at"]).date()
    try:
        anniversary = when.replace(year=when.year - int(document["age_years"]))
    except ValueError:  # 29 February
        anniversary = when.replace(year=when.year - int(document["age_years"]), day=28)
    return Identity(
        mrn=mrn,
        given=GIVEN[n % len(GIVEN)],
        family=FAMILY[(n // 10) % len(FAMILY)],
        phone=f"+1-562-555-{n % 10_000:04d}",
        birth_date=anniversary - timedelta(days=1 + n % 300),
        street=f"{100 + n % 900} Quarry Hollow Road",
    )


def _observations(document: dict[str, Any]) -> list[dict[str, Any]]:
    return list(document.get("observations", []))


def _codeable(code: dict[str, Any]) -> dict[str, Any]:
    return {"coding": [{k: v for k, v in code.items() if v is not None}]}


def _fhir_observation(observation: dict[str, Any], subject: str, encounter: str) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Observation",
        "status": "final",
        "subject": {"reference": subject},
        "encounter": {"reference": encounter},
        "effectiveDateTime": observation["time"],
    }
    value: dict[str, Any] = {}
    if observation.get("value") is not None:
        value["valueQuantity"] = {
            "value": observation["value"],
            "unit": observation.get("unit"),
            "system": UCUM,
            "code": observation.get("unit"),
        }
    elif observation.get("value_code") is not None:
        value["valueCodeableConcept"] = _codeable(observation["value_code"])
    if observation["code"]["code"] == SYSTOLIC:  # the BP as a panel, the systolic value as its component
        resource["code"] = _codeable(BP_PANEL)
        resource["component"] = [{"code": _codeable(observation["code"]), **value}]
    else:
        resource["code"] = _codeable(observation["code"])
        resource.update(value)
    return resource


def fhir_bundle(document: dict[str, Any], hospital: str = "cleveland") -> dict[str, Any]:
    """A FHIR R4 collection Bundle: Patient (with the synthetic identity), Encounter, Observations, Conditions."""
    who = identity(document)

    def full_url(kind: str, index: int = 0) -> str:
        return f"urn:uuid:{uuid.uuid5(_NAMESPACE, f'{hospital}/{who.mrn}/{kind}/{index}')}"

    patient, encounter = full_url("patient"), full_url("encounter")
    entries: list[dict[str, Any]] = [
        {
            "fullUrl": patient,
            "resource": {
                "resourceType": "Patient",
                "identifier": [
                    {
                        "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]},
                        "system": f"urn:hospital:{hospital}:mrn",
                        "value": who.mrn,
                    }
                ],
                "name": [{"family": who.family, "given": [who.given]}],
                "telecom": [{"system": "phone", "value": who.phone, "use": "home"}],
                "address": [{"line": [who.street], "city": "Cleveland", "state": "OH"}],
                "gender": document.get("sex", "unknown"),
                "birthDate": who.birth_date.isoformat(),
            },
        },
        {
            "fullUrl": encounter,
            "resource": {
                "resourceType": "Encounter",
                "status": "finished",
                "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
                "identifier": [{"value": document.get("encounter_id") or f"{who.mrn}-visit"}],
                "subject": {"reference": patient},
                "period": {"start": document["recorded_at"]},
            },
        },
    ]
    for index, observation in enumerate(_observations(document)):
        entries.append(
            {"fullUrl": full_url("observation", index), "resource": _fhir_observation(observation, patient, encounter)}
        )
    for index, condition in enumerate(document.get("conditions", [])):
        entries.append(
            {
                "fullUrl": full_url("condition", index),
                "resource": {
                    "resourceType": "Condition",
                    "subject": {"reference": patient},
                    "encounter": {"reference": encounter},
                    "clinicalStatus": _codeable(
                        {"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}
                    ),
                    "verificationStatus": _codeable(
                        {"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": "confirmed"}
                    ),
                    "code": _codeable(condition["code"]),
                },
            }
        )
    return {"resourceType": "Bundle", "type": "collection", "entry": entries}


def hl7_escape(text: str) -> str:
    """HL7 v2 escape sequences for the default encoding characters (|^~\\&)."""
    return (
        text.replace("\\", "\\E\\")
        .replace("|", "\\F\\")
        .replace("^", "\\S\\")
        .replace("&", "\\T\\")
        .replace("~", "\\R\\")
    )


def _hl7_time(iso: str) -> str:
    return datetime.fromisoformat(iso).strftime("%Y%m%d%H%M%S")


def _hl7_code(code: dict[str, Any]) -> str:
    system = HL7_SYSTEMS.get(code["system"], code["system"])
    return "^".join(hl7_escape(str(part or "")) for part in (code["code"], code.get("display"), system))


def hl7_oru(document: dict[str, Any], hospital: str = "hungary") -> str:
    """An HL7 v2.5 ORU^R01: PID (MRN in PID-3 typed MR, synthetic name, birth date, address, phone), PV1 with the
    visit number, one OBR and an OBX per observation (NM with UCUM units, CWE for coded findings)."""
    who = identity(document)
    when = _hl7_time(document["recorded_at"])
    sex = {"male": "M", "female": "F"}.get(document.get("sex", ""), "U")
    encounter = hl7_escape(document.get("encounter_id") or "")
    segments = [
        f"MSH|^~\\&|CARDIOLAB|{hospital.upper()}|AIMASS|AIMASS|{when}||ORU^R01^ORU_R01|"
        f"{_number(who.mrn + document['recorded_at'])}|P|2.5",
        f"PID|1||{hl7_escape(who.mrn)}^^^{hospital.upper()}^MR||{who.family}^{who.given}||"
        f"{who.birth_date:%Y%m%d}|{sex}|||{who.street}^^Budapest^^1011^HU||{who.phone}",
        f"PV1|1|O|||||||||||||||||{encounter}" + "|" * 25 + when,
        f"OBR|1||{encounter}|{_hl7_code({'system': AIMASS_CODES, 'code': 'uci-heart-workup'})}|||{when}",
    ]
    for index, observation in enumerate(_observations(document), start=1):
        time = _hl7_time(observation["time"]) if observation.get("time") else ""
        if observation.get("value") is not None:
            kind, value = "NM", f"{observation['value']:g}"
            unit = f"{hl7_escape(observation.get('unit') or '')}^^UCUM" if observation.get("unit") else ""
        else:
            kind, value, unit = "CWE", _hl7_code(observation["value_code"]), ""
        segments.append(f"OBX|{index}|{kind}|{_hl7_code(observation['code'])}||{value}|{unit}|||||F|||{time}")
    return "\r".join(segments) + "\r"


def _va_row(document: dict[str, Any]) -> dict[str, str]:
    who = identity(document)
    by_code = {o["code"]["code"]: o for o in _observations(document)}
    row = {
        "patient_no": who.mrn,
        "patient_name": f"{who.family}, {who.given}",
        "phone": who.phone,
        "date_of_birth": who.birth_date.isoformat(),
        "visit_no": document.get("encounter_id") or "",
        "visit_date": document["recorded_at"],
        "gender": {"male": "M", "female": "F"}.get(document["sex"], ""),
    }
    cholesterol = by_code.get(CHOLESTEROL_MASS)
    row["cholesterol_mmol_l"] = f"{cholesterol['value'] / MG_DL_PER_MMOL_L:.2f}" if cholesterol else ""
    for column, code in VA_NUMERIC.items():
        row[column] = f"{by_code[code]['value']:g}" if code in by_code else ""
    for column, code in VA_CODED.items():
        value = by_code[code]["value_code"]["display"] if code in by_code else ""
        row[column] = VA_YES_NO.get(value, value)
    return row


def csv_rows(documents: list[dict[str, Any]]) -> str:
    """VA Long Beach's export of these documents: a header and one row per encounter."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=VA_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(_va_row(d) for d in documents)
    return out.getvalue()
