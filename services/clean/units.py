"""UCUM unit conversion with pint (UCUM parsed by ucumvert), reduced to a cached affine map per unit pair.

Every conversion clean needs is affine (°F -> °C has an offset, the HbA1c master equation too), so pint runs once
per (analyte, from, to) and the per-value work is one multiply-add. A unit pint cannot read, or cannot convert to
the target, is a ``UnitProblem``: a quality flag, never a guess.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any, Literal

from services.clean.analytes import IFCC_NGSP_INTERCEPT, IFCC_SLOPE, IFCC_UNIT, NGSP_UNIT, Analyte

SIGNIFICANT_DIGITS = 10  # drops float noise (98.6 °F -> 37.00000000000006 °C) far below any instrument's precision
UNIT_CACHE_SIZE = 1024


class UnitProblem(Exception):
    def __init__(self, kind: Literal["unknown_unit", "incompatible_unit"], detail: str) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail


@dataclass(frozen=True)
class Affine:
    scale: float
    offset: float = 0.0

    def __call__(self, value: float) -> float:
        return round_significant(value * self.scale + self.offset)


IDENTITY = Affine(1.0)


def round_significant(value: float, digits: int = SIGNIFICANT_DIGITS) -> float:
    if value == 0 or not math.isfinite(value):
        return value
    try:
        return round(value, digits - 1 - math.floor(math.log10(abs(value))))
    except OverflowError:  # rounding up near the largest float: the value is implausible anyway, keep it as sent
        return value


@cache
def _registry() -> Any:
    from ucumvert import PintUcumRegistry  # loads the UCUM grammar (~0.5 s): only when the first unit is read

    return PintUcumRegistry()


@lru_cache(maxsize=UNIT_CACHE_SIZE)  # bounded: any text with a UCUM annotation is a valid unit of its own
def ucum_unit(unit: str) -> Any:
    """The pint unit for a UCUM code, or ``UnitProblem('unknown_unit')``."""
    try:
        return _registry().from_ucum(unit).units
    except Exception:  # ucumvert raises lark errors of several kinds for text that is not UCUM
        raise UnitProblem("unknown_unit", f"unit {unit!r} is not a UCUM unit") from None


def _ifcc(from_unit: str, to_unit: str) -> Affine:
    if (from_unit, to_unit) == (NGSP_UNIT, IFCC_UNIT):
        return Affine(IFCC_SLOPE, -IFCC_NGSP_INTERCEPT * IFCC_SLOPE)
    if (from_unit, to_unit) == (IFCC_UNIT, NGSP_UNIT):
        return Affine(1 / IFCC_SLOPE, IFCC_NGSP_INTERCEPT)
    raise UnitProblem(
        "incompatible_unit",
        f"HbA1c is converted between {NGSP_UNIT!r} and {IFCC_UNIT!r} only, not {from_unit!r} -> {to_unit!r}",
    )


@lru_cache(maxsize=UNIT_CACHE_SIZE)
def conversion(from_unit: str, to_unit: str, analyte: Analyte | None = None) -> Affine:
    """The map from values in ``from_unit`` to values in ``to_unit`` (UCUM codes), for ``analyte`` where the
    conversion depends on it (molar mass; the HbA1c master equation)."""
    if from_unit == to_unit:
        return IDENTITY
    if analyte is not None and analyte.ifcc_master_equation:
        return _ifcc(from_unit, to_unit)
    source, target = ucum_unit(from_unit), ucum_unit(to_unit)
    try:
        low, high, check = (_convert(value, source, target, analyte, from_unit, to_unit) for value in (0.0, 1.0, 10.0))
    except UnitProblem:
        raise
    except Exception:  # pint refuses, e.g. an offset unit (Cel) times a molar mass
        raise UnitProblem("incompatible_unit", f"unit {from_unit!r} cannot be converted to {to_unit!r}") from None
    affine = Affine(high - low, low)
    if not math.isclose(affine.scale * 10.0 + affine.offset, check, rel_tol=1e-9, abs_tol=1e-12):
        raise UnitProblem("incompatible_unit", f"unit {from_unit!r} is not linear in {to_unit!r} (logarithmic?)")
    return affine


def _convert(value: float, source: Any, target: Any, analyte: Analyte | None, from_unit: str, to_unit: str) -> float:
    quantity = _registry().Quantity(value, source)
    if quantity.dimensionality != target.dimensionality:
        quantity = _via_molar_mass(quantity, target, analyte, from_unit, to_unit)
    return float(quantity.to(target).magnitude)


def _via_molar_mass(value: Any, target: Any, analyte: Analyte | None, from_unit: str, to_unit: str) -> Any:
    if analyte is not None and analyte.molar_mass is not None:
        molar_mass = _registry().Quantity(analyte.molar_mass, "g/mol")
        for candidate in (value * molar_mass, value / molar_mass):
            if candidate.dimensionality == target.dimensionality:
                return candidate
    what = f" for {analyte.name}" if analyte is not None else ""
    raise UnitProblem("incompatible_unit", f"unit {from_unit!r} cannot be converted to {to_unit!r}{what}")
