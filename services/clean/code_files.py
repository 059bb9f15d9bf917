"""Reading the code tables from ``deploy/codes/*.yaml`` (``AIMASS_CODES_DIR``). A malformed table stops clean at
start-up with the file and the field named: running with half a table would flag good codes as unmapped."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import ValidationError

from services.clean.codes import DEFAULT_TABLE, CodeBook, CodeTable
from services.clean.units import UnitProblem, ucum_unit
from shared.errors import describe_validation_error


class CodeTableError(Exception):
    pass


def load_code_table(path: Path) -> CodeTable:
    try:
        table = CodeTable.model_validate(yaml.safe_load(path.read_text()))
    except ValidationError as error:
        raise CodeTableError(f"{path}: {describe_validation_error(error)}") from None
    except yaml.YAMLError as error:
        raise CodeTableError(f"{path}: not valid YAML ({error.__class__.__name__})") from None
    expected = "default" if table.hospital == DEFAULT_TABLE else table.hospital
    if path.stem != expected:
        raise CodeTableError(f"{path}: names hospital {table.hospital!r}, so the file must be {expected}.yaml")
    for alias, ucum in table.units.items():
        try:
            ucum_unit(ucum)
        except UnitProblem:
            raise CodeTableError(f"{path}: units.{alias!r} maps to {ucum!r}, which is not a UCUM unit") from None
    return table


def load_code_book(directory: Path) -> CodeBook:
    if not directory.is_dir():
        raise CodeTableError(f"code table folder {directory} does not exist (AIMASS_CODES_DIR)")
    return CodeBook([load_code_table(path) for path in sorted(directory.glob("*.yaml"))])
