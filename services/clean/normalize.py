"""One observation to its canonical form: standard code, canonical UCUM unit, plausible or flagged (pure)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from services.clean.analytes import Analyte
from services.clean.codes import HospitalCodes
from services.clean.units import UnitProblem, conversion, ucum_unit
from shared.schemas.records import LOINC, AsSent, CleanObservation, Code, Observation, QualityFlag

CodeKey = tuple[str, str]


@dataclass(frozen=True)
class Target:
    """Where an observation of one code ends up: the code clean emits it under and the unit of its value."""

    code: Code
    unit: str | None
    analyte: Analyte | None = None


def canonical_targets(task_units: dict[CodeKey, str], analytes: tuple[Analyte, ...]) -> dict[CodeKey, Target]:
    """Every code of an analyte leads to one code (the one a task uses, else the analyte's first) in one unit
    (the task's, else the analyte's); a task's own codes lead to themselves in the task's unit."""
    targets: dict[CodeKey, Target] = {}
    for analyte in analytes:
        keys = [(LOINC, code) for code in analyte.codes]
        chosen = next((key for key in keys if key in task_units), keys[0])
        target = Target(Code(system=LOINC, code=chosen[1]), task_units.get(chosen, analyte.unit), analyte)
        targets.update(dict.fromkeys(keys, target))
    for key, unit in task_units.items():
        targets.setdefault(key, Target(Code(system=key[0], code=key[1]), unit))
    return targets


@dataclass(frozen=True)
class NormalizedObservation:
    observation: CleanObservation
    flags: tuple[QualityFlag, ...] = ()
    conversion: tuple[str, str] | None = None  # (from, to) UCUM units, when the value was converted
    implausible: str | None = None  # the analyte, when its value was implausible and dropped


def unmapped(code: Code, table: str) -> QualityFlag:
    return QualityFlag(
        kind="unmapped_code",
        field=code.code,
        detail=f"code of system {code.system} is not in code table {table}; kept as sent",
    )


def _in_canonical_unit(value: float, unit: str | None, target: Target | None) -> tuple[float, str | None]:
    if target is None or target.unit is None:
        if unit is not None:
            ucum_unit(unit)  # a unit nobody converts must still be UCUM, or the record says so
        return value, unit
    if unit is None:
        if target.unit == "1":
            return value, "1"
        raise UnitProblem("unknown_unit", f"no unit sent; expected one convertible to {target.unit!r}")
    return conversion(unit, target.unit, target.analyte)(value), target.unit


def _implausible(value: float, unit: str, analyte: Analyte) -> bool:
    if not math.isfinite(value):
        return True
    in_default = value if unit == analyte.unit else conversion(unit, analyte.unit, analyte)(value)
    low, high = analyte.plausible
    return not low <= in_default <= high


def normalize_observation(
    observation: Observation, codes: HospitalCodes, targets: dict[CodeKey, Target]
) -> NormalizedObservation:
    flags: list[QualityFlag] = []
    code = codes.translate(observation.code)
    if code is None:
        flags.append(unmapped(observation.code, codes.label))
        code = observation.code
    value_code = observation.value_code
    if value_code is not None:
        mapped = codes.translate(value_code)
        if mapped is None:
            flags.append(unmapped(value_code, codes.label))
        value_code = mapped or value_code
    target = targets.get((code.system, code.code))
    if target is not None and target.code.code != code.code:
        code = target.code
    value, unit = observation.value, codes.ucum(observation.unit)
    converted = implausible = None
    if value is not None:
        try:
            value, unit = _in_canonical_unit(value, unit, target)
        except UnitProblem as problem:
            flags.append(QualityFlag(kind=problem.kind, field=code.code, detail=problem.detail))
            value, unit = observation.value, observation.unit
        else:
            if target is not None and target.unit is not None and unit != codes.ucum(observation.unit):
                converted = (codes.ucum(observation.unit) or "", target.unit)
            analyte = target.analyte if target is not None else None
            if analyte is not None and unit is not None and _implausible(value, unit, analyte):
                low, high = analyte.plausible
                flags.append(
                    QualityFlag(
                        kind="implausible",
                        field=code.code,
                        detail=(
                            f"{analyte.name} outside the plausible range {low:g}-{high:g} {analyte.unit}; "
                            "treated as missing"
                        ),
                    )
                )
                value, implausible = None, analyte.name
    changed = (
        (code.system, code.code) != (observation.code.system, observation.code.code)
        or value != observation.value
        or unit != observation.unit
    )
    as_sent = AsSent(code=observation.code, value=observation.value, unit=observation.unit) if changed else None
    # ``__dict__`` holds the fields; ``dict(observation)`` would first probe for ``.keys`` (an exception each time).
    clean = CleanObservation(
        **{
            **observation.__dict__,
            "code": code,
            "value_code": value_code,
            "value": value,
            "unit": unit,
            "as_sent": as_sent,
        }
    )
    return NormalizedObservation(clean, tuple(flags), converted, implausible)
