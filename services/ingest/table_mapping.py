"""A hospital's spreadsheet layout: which column holds what (the ``table:`` part of ``deploy/hospitals/<id>.yaml``)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.schemas.records import Sex


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ColumnMapping(_Model):
    """One column that holds an observation."""

    system: str = Field(description="code system URI of the observation, e.g. http://loinc.org")
    code: str
    display: str | None = None
    kind: Literal["numeric", "coded", "text"] = "numeric"
    unit: str | None = Field(None, description="UCUM unit of the column's numbers, as the hospital records them")
    values: dict[str, str] = Field(default_factory=dict, description="the hospital's own values → ours")
    value_system: str | None = Field(None, description="coded: system of the value code (default: `system`)")
    value_template: str = Field("{value}", description="coded: the value code, e.g. 'chest-pain-type:{value}'")


class SexColumn(_Model):
    column: str
    values: dict[str, Sex] = Field(default_factory=dict, description="e.g. {M: male, F: female}")


class TableMapping(_Model):
    """Columns of a CSV or XLSX export; columns not named here are never read (identifiers included)."""

    delimiter: str = Field(",", min_length=1, max_length=1)
    sheet: str | int = Field(0, description="XLSX: sheet name or position")
    patient_id: str = Field(description="column of the hospital's patient identifier (pseudonymized)")
    encounter_id: str | None = None
    recorded_at: str | None = None
    date_format: str | None = Field(None, description="strptime format of date columns; ISO 8601 if absent")
    birth_date: str | None = Field(None, description="turned into an age, then dropped")
    age_years: str | None = None
    sex: SexColumn | None = None
    dropped: list[str] = Field(
        default_factory=list,
        description="identifier columns the hospital sends that ingest ignores (documentation: they are never read)",
    )
    columns: dict[str, ColumnMapping] = Field(default_factory=dict)


class HospitalConfig(_Model):
    """``deploy/hospitals/<id>.yaml``."""

    hospital: str
    description: str = ""
    sends: list[str] = Field(default_factory=list, description="formats this hospital publishes (documentation)")
    table: TableMapping | None = None
    mllp_port: int | None = Field(
        None, ge=1, le=65535, description="the TCP port of this hospital's MLLP listener (a connection there is it)"
    )
