"""Adapter: the per-hospital files under ``AIMASS_HOSPITALS_DIR`` (``deploy/hospitals/<id>.yaml``)."""

from __future__ import annotations

import logging
from pathlib import Path

import yaml
from pydantic import ValidationError

from services.ingest.table_mapping import HospitalConfig, TableMapping

log = logging.getLogger("aimass.ingest")


def load_hospital(path: Path) -> HospitalConfig:
    config = HospitalConfig.model_validate(yaml.safe_load(path.read_text()))
    if config.hospital != path.stem:
        raise ValueError(f"{path}: hospital {config.hospital!r} does not match the file name")
    return config


def load_tables(folder: Path) -> dict[str, TableMapping]:
    """Every hospital's table mapping; a broken file is logged and skipped so the others still work."""
    tables: dict[str, TableMapping] = {}
    for path in sorted(folder.glob("*.yaml")) if folder.is_dir() else []:
        try:
            config = load_hospital(path)
        except (OSError, ValueError, ValidationError, yaml.YAMLError):
            log.error(
                "unreadable hospital file %s: its CSV/XLSX documents will be dead-lettered",
                path.name,
                extra={"event": "hospital_file_invalid"},
            )
            continue
        if config.table is not None:
            tables[config.hospital] = config.table
    return tables
