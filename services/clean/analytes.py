"""What clean knows about the analytes it converts: their LOINC codes, molar mass, default unit, plausible range.

Facts, not configuration: a molar mass does not vary by hospital. A task file may choose another canonical unit for
a code; the default unit here applies to observations no task uses. Plausible ranges are wide on purpose: they
catch recording errors (cholesterol 0, systolic 400), not disease.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.schemas.records import LOINC


@dataclass(frozen=True)
class Analyte:
    name: str
    codes: tuple[str, ...]  # LOINC codes of the analyte; the first is the one clean emits unless a task names another
    unit: str  # default canonical UCUM unit
    plausible: tuple[float, float]  # in ``unit``
    molar_mass: float | None = None  # g/mol: what mass <-> substance concentration conversions need
    ifcc_master_equation: bool = False  # HbA1c: % (NGSP) <-> mmol/mol (IFCC) is not a unit conversion


ANALYTES: tuple[Analyte, ...] = (
    Analyte("glucose", ("2345-7", "14749-6"), "mg/dL", (10, 2500), molar_mass=180.156),
    Analyte("cholesterol", ("2093-3", "14647-2"), "mg/dL", (40, 1000), molar_mass=386.65),
    Analyte("creatinine", ("2160-0", "14682-9"), "mg/dL", (0.1, 30), molar_mass=113.12),
    Analyte("hba1c", ("4548-4", "59261-8"), "%", (3, 20), ifcc_master_equation=True),
    Analyte("heart_rate", ("8867-4",), "/min", (20, 300)),
    Analyte("systolic_bp", ("8480-6",), "mm[Hg]", (40, 300)),
    Analyte("diastolic_bp", ("8462-4",), "mm[Hg]", (20, 200)),
    Analyte("body_temperature", ("8310-5",), "Cel", (25, 45)),
    Analyte("respiratory_rate", ("9279-1",), "/min", (3, 80)),
    Analyte("oxygen_saturation", ("2708-6",), "%", (50, 100)),
    Analyte("body_weight", ("29463-7",), "kg", (0.3, 400)),
    Analyte("body_height", ("8302-2",), "cm", (20, 260)),
    Analyte("body_mass_index", ("39156-5",), "kg/m2", (8, 100)),
)

# HbA1c, IFCC master equation: mmol/mol = (% - 2.15) x 10.929.
NGSP_UNIT, IFCC_UNIT = "%", "mmol/mol"
IFCC_SLOPE, IFCC_NGSP_INTERCEPT = 10.929, 2.15


def analytes_by_code(analytes: tuple[Analyte, ...] = ANALYTES) -> dict[tuple[str, str], Analyte]:
    return {(LOINC, code): analyte for analyte in analytes for code in analyte.codes}
