"""CSV and XLSX exports (pandas, openpyxl): one row per encounter, columns mapped by the hospital's file
``deploy/hospitals/<id>.yaml`` (pure: the mapping is passed in).

Columns the mapping does not name are never read. A bad row is rejected alone, as a one-row CSV with the header,
while the other rows go on.
"""

from __future__ import annotations

import csv
import io
import math
import re
import zipfile
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pandas as pd
from pydantic import ValidationError

from services.ingest.parsed import ParseContext, ParsedDocument, ParsedRecord, PartBudget, RejectedPart
from services.ingest.table_mapping import ColumnMapping, TableMapping
from shared.errors import RejectedInput, describe_validation_error
from shared.schemas import Code, IncomingRecord, Observation

CSV_CONTENT_TYPE = "text/csv"
XLSX_CONTENT_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
SEX_WORDS = {"male", "female", "other", "unknown"}
MAX_ROWS = 100_000
MAX_COLUMNS = 1_000  # pandas' time grows faster than the column count: 20,000 columns took 4 s, 100,000 took minutes
MAX_XLSX_UNCOMPRESSED = 64 * 1024 * 1024  # a workbook is a zip: a small one can inflate to gigabytes (zip bomb)
_LINE = re.compile(r"line (\d+)")


def _mapping(context: ParseContext, label: str) -> TableMapping:
    mapping = context.tables.get(context.hospital)
    if mapping is None:
        raise RejectedInput(
            f"{label}: no column mapping for hospital {context.hospital[:64]!r} "
            f"(add deploy/hospitals/{context.hospital[:64]}.yaml with a 'table' section)",
            "unmapped",
        )
    return mapping


def _check_width(text: str, delimiter: str) -> None:
    """No row wider than ``MAX_COLUMNS``, checked with the csv module (milliseconds for 2 MB) before pandas, whose
    time grows faster than the width: found by the fuzz run, a blank first line hid a 30,000-column header (8 s),
    and a 1-column header followed by a row of 20,000 fields took 28 s and 3 GB."""
    csv.field_size_limit(max(csv.field_size_limit(), len(text) + 1))  # one cell may be the whole (bounded) document
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    header_seen = False
    for row in reader:
        if len(row) > MAX_COLUMNS:
            where = "in the header row" if not header_seen else f"in the row at line {reader.line_num}"
            raise RejectedInput(f"CSV: more than {MAX_COLUMNS} columns {where}", "oversized")
        header_seen = header_seen or len(row) > 1 or bool(row and row[0].strip())  # pandas skips blank lines


def _read_csv(document: bytes, mapping: TableMapping) -> pd.DataFrame:
    try:
        text = document.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise RejectedInput(f"CSV: not valid UTF-8 at byte {error.start}", "encoding") from None
    try:
        _check_width(text, mapping.delimiter)
    except csv.Error as error:
        line = _LINE.search(str(error))
        raise RejectedInput(
            f"CSV: cannot be read{f' at line {line.group(1)}' if line else ''} ({error})", "malformed"
        ) from None
    try:
        return pd.read_csv(
            io.StringIO(text),
            sep=mapping.delimiter,
            dtype=str,
            keep_default_na=False,
            skip_blank_lines=True,
            engine="c",
            nrows=MAX_ROWS + 1,
        )
    except pd.errors.EmptyDataError:
        raise RejectedInput("CSV: no header row", "empty") from None
    except Exception as error:  # pandas' tokenizer errors name the line, never its content
        line = _LINE.search(str(error))
        where = f" at line {line.group(1)}" if line else ""
        raise RejectedInput(f"CSV: cannot be read{where} ({type(error).__name__})", "malformed") from None


def _check_inflated_size(document: bytes) -> None:
    """Rejects a workbook whose parts declare more than ``MAX_XLSX_UNCOMPRESSED`` bytes; zipfile holds each part to
    its declared size when reading, so the declaration cannot lie."""
    try:
        with zipfile.ZipFile(io.BytesIO(document)) as archive:
            declared = sum(part.file_size for part in archive.infolist())
    except Exception:  # not a zip at all: pandas says so below, with the usual reason
        return
    if declared > MAX_XLSX_UNCOMPRESSED:
        raise RejectedInput(
            f"XLSX: the workbook expands to {declared} bytes, more than the limit of {MAX_XLSX_UNCOMPRESSED}",
            "oversized",
        )


def _read_xlsx(document: bytes, mapping: TableMapping) -> pd.DataFrame:
    _check_inflated_size(document)
    try:
        frame = pd.read_excel(
            io.BytesIO(document),
            sheet_name=mapping.sheet,
            dtype=str,
            engine="openpyxl",
            keep_default_na=False,
            nrows=MAX_ROWS + 1,
        )
    except Exception as error:  # openpyxl: BadZipFile, KeyError, ValueError ... on anything that is not a workbook
        raise RejectedInput(f"XLSX: cannot be read as a workbook ({type(error).__name__})", "malformed") from None
    return frame.fillna("")


def _datetime(text: str, date_format: str | None, where: str) -> datetime | None:
    if not text:
        return None
    try:
        parsed = datetime.strptime(text, date_format) if date_format else datetime.fromisoformat(text)
    except ValueError:
        raise RejectedInput(
            f"{where}: not a date{f' ({date_format})' if date_format else ' (ISO 8601)'}", "schema"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _number(text: str, where: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise RejectedInput(f"{where}: not a number", "schema") from None
    if not math.isfinite(value):
        raise RejectedInput(f"{where}: not a finite number", "schema")
    return value


def _observation(column: str, mapping: ColumnMapping, text: str, when: datetime | None, where: str) -> Observation:
    code = Code(system=mapping.system, code=mapping.code, display=mapping.display)
    if mapping.kind == "numeric":
        return Observation(code=code, value=_number(text, where), unit=mapping.unit, time=when)
    if mapping.kind == "coded":
        local = mapping.values.get(text, text)
        value_code = mapping.value_template.format(value=local)
        return Observation(
            code=code,
            value_code=Code(system=mapping.value_system or mapping.system, code=value_code[:256], display=local[:512]),
            time=when,
        )
    return Observation(code=code, value_text=text[:4096], time=when)


def _row(row: dict[str, str], mapping: TableMapping, where: str) -> IncomingRecord:
    def cell(column: str | None) -> str:
        return str(row.get(column, "")).strip() if column else ""

    patient_id = cell(mapping.patient_id)
    if not patient_id:
        raise RejectedInput(f"{where} column {mapping.patient_id!r}: empty patient identifier", "schema")
    when = _datetime(cell(mapping.recorded_at), mapping.date_format, f"{where} column {mapping.recorded_at!r}")
    birth = _datetime(cell(mapping.birth_date), mapping.date_format, f"{where} column {mapping.birth_date!r}")
    age = cell(mapping.age_years)
    sex = cell(mapping.sex.column) if mapping.sex else ""
    sex = mapping.sex.values.get(sex, sex.lower()) if mapping.sex else "unknown"
    try:
        observations = [
            _observation(column, spec, cell(column), when, f"{where} column {column!r}")
            for column, spec in mapping.columns.items()
            if cell(column)
        ]
        return IncomingRecord(
            patient_id=patient_id,
            encounter_id=cell(mapping.encounter_id) or None,
            recorded_at=when,
            birth_date=birth.date() if birth else None,
            age_years=int(_number(age, f"{where} column {mapping.age_years!r}")) if age else None,
            sex=sex if sex in SEX_WORDS else "unknown",
            observations=observations,
        )
    except ValidationError as error:
        raise RejectedInput(f"{where} {describe_validation_error(error)}", "schema") from None


def _one_row_csv(header: list[str], row: list[Any], delimiter: str) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\n")
    writer.writerows([header, row])
    return out.getvalue().encode()


def _parse_table(frame: pd.DataFrame, mapping: TableMapping, label: str, budget: PartBudget) -> ParsedDocument:
    if len(frame.columns) > MAX_COLUMNS:
        raise RejectedInput(f"{label}: more than {MAX_COLUMNS} columns", "oversized")
    frame.columns = [str(c).strip() for c in frame.columns]
    if mapping.patient_id not in frame.columns:
        raise RejectedInput(
            f"{label}: column {mapping.patient_id!r} (the patient identifier in the hospital's "
            "mapping) is missing from the header",
            "schema",
        )
    if len(frame) > MAX_ROWS:
        raise RejectedInput(f"{label}: more than {MAX_ROWS} rows; split the export", "oversized")
    if frame.empty:
        raise RejectedInput(f"{label}: a header but no rows", "empty")
    header = list(frame.columns)
    records, rejected = [], []
    for position, values in enumerate(frame.itertuples(index=False, name=None), start=1):
        row = dict(zip(header, values, strict=True))
        try:
            records.append(ParsedRecord(_row(row, mapping, f"{label} row {position}"), f"row-{position}"))
        except RejectedInput as problem:
            rejected.append(
                budget.spend(
                    RejectedPart(
                        f"row-{position}",
                        problem.reason,
                        problem.reason_class,
                        _one_row_csv(header, list(values), mapping.delimiter),
                        CSV_CONTENT_TYPE,
                    )
                )
            )
    if not records:
        raise RejectedInput(
            "; ".join(r.reason for r in rejected[:3]) + f" (all {len(rejected)} rows rejected)",
            rejected[0].reason_class,
        )
    return ParsedDocument(records=records, rejected=rejected)


def _table_parser(
    label: str, read: Callable[[bytes, TableMapping], pd.DataFrame]
) -> Callable[[bytes, ParseContext], ParsedDocument]:
    def parse(document: bytes, context: ParseContext) -> ParsedDocument:
        mapping = _mapping(context, label)
        return _parse_table(read(document, mapping), mapping, label, PartBudget(document, label))

    return parse


parse_csv = _table_parser("CSV", _read_csv)
parse_xlsx = _table_parser("XLSX", _read_xlsx)
