"""Per-hospital code tables: a hospital's local codes -> LOINC / SNOMED / the project's own codes (pure).

The tables live as versioned YAML files under ``deploy/codes/`` (format in docs/clean.md). ``default.yaml`` applies
to every hospital; ``<hospital>.yaml`` adds to it and wins where both map the same code or unit.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from shared.schemas.records import AIMASS_CODES, LOINC, SNOMED, Code

STANDARD_SYSTEMS = frozenset({LOINC, SNOMED, AIMASS_CODES})
"""Codes in these systems are already what models read; a code in any other system needs a mapping."""
DEFAULT_TABLE = "*"


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CodeRef(_Spec):
    system: str = Field(min_length=1)
    code: str = Field(min_length=1)
    display: str | None = None


class CodeMapping(_Spec):
    from_: CodeRef = Field(alias="from")
    to: CodeRef


class CodeTable(_Spec):
    hospital: str = Field(min_length=1, description="the hospital id (ce_source), or '*' for every hospital")
    version: int = Field(ge=1, description="raise on every change; clean reports it in /readyz and in flags")
    description: str = ""
    codes: list[CodeMapping] = Field(default_factory=list)
    units: dict[str, str] = Field(default_factory=dict, description="unit as sent -> UCUM code")

    @field_validator("codes")
    @classmethod
    def _each_code_once(cls, codes: list[CodeMapping]) -> list[CodeMapping]:
        seen: set[tuple[str, str]] = set()
        for mapping in codes:
            key = (mapping.from_.system, mapping.from_.code)
            if key in seen:
                raise ValueError(f"code {key[1]!r} of {key[0]!r} is mapped twice")
            seen.add(key)
        return codes

    @property
    def label(self) -> str:
        return f"{self.hospital} v{self.version}"


class HospitalCodes:
    """The default table merged with one hospital's: what clean consults for that hospital's records."""

    def __init__(self, default: CodeTable, own: CodeTable | None) -> None:
        tables = [default] if own is None else [default, own]
        self.codes = {(m.from_.system, m.from_.code): m.to for t in tables for m in t.codes}
        self.units = {alias: ucum for t in tables for alias, ucum in t.units.items()}
        self.label = " + ".join(t.label for t in tables)

    def translate(self, code: Code) -> Code | None:
        """The standard code for ``code``: itself when already standard, ``None`` when unmapped."""
        target = self.codes.get((code.system, code.code))
        if target is not None:
            return Code(system=target.system, code=target.code, display=target.display or code.display)
        return code if code.system in STANDARD_SYSTEMS else None

    def ucum(self, unit: str | None) -> str | None:
        if unit is None:
            return None
        stripped = unit.strip()
        return self.units.get(stripped, stripped)


class CodeBook:
    """Every hospital's tables; a hospital without a file of its own gets the default table alone."""

    def __init__(self, tables: list[CodeTable]) -> None:
        by_hospital = {t.hospital: t for t in tables}
        if len(by_hospital) != len(tables):
            raise ValueError("two code tables name the same hospital")
        self.default = by_hospital.pop(DEFAULT_TABLE, CodeTable(hospital=DEFAULT_TABLE, version=1))
        self.tables = by_hospital
        self._merged = {h: HospitalCodes(self.default, t) for h, t in by_hospital.items()}
        self._default_only = HospitalCodes(self.default, None)

    def for_hospital(self, hospital: str) -> HospitalCodes:
        return self._merged.get(hospital, self._default_only)

    def versions(self) -> dict[str, int]:
        return {t.hospital: t.version for t in [self.default, *self.tables.values()]}
