"""Adapter: the per-hospital files under ``AIMASS_HOSPITALS_DIR`` (``deploy/hospitals/<id>.yaml``)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import yaml
from pydantic import ValidationError

from services.ingest.documents import HOSPITAL_ID
from services.ingest.table_mapping import HospitalConfig, TableMapping

log = logging.getLogger("aimass.ingest")


def load_hospital(path: Path) -> HospitalConfig:
    config = HospitalConfig.model_validate(yaml.safe_load(path.read_text()))
    if config.hospital != path.stem:
        raise ValueError(f"{path}: hospital {config.hospital!r} does not match the file name")
    return config


def load_hospitals(folder: Path) -> list[HospitalConfig]:
    """Every readable hospital file; a broken one is logged and skipped so the others still work."""
    configs = []
    for path in sorted(folder.glob("*.yaml")) if folder.is_dir() else []:
        try:
            configs.append(load_hospital(path))
        except (OSError, ValueError, ValidationError, yaml.YAMLError):
            log.error(
                "unreadable hospital file %s: its CSV/XLSX documents will be dead-lettered, its MLLP port not opened",
                path.name,
                extra={"event": "hospital_file_invalid"},
            )
    return configs


def load_tables(folder: Path) -> dict[str, TableMapping]:
    """Every hospital's table mapping."""
    return {config.hospital: config.table for config in load_hospitals(folder) if config.table is not None}


def mllp_ports(configured: Mapping[str, int], folder: Path) -> dict[str, int]:
    """Hospital → MLLP port: ``AIMASS_INGEST_MLLP_PORTS`` when set, else each hospital file's ``mllp_port``. A port
    named twice, or a hospital that is not an id, opens nothing (logged): a port must mean one hospital."""
    wanted = dict(configured) or {c.hospital: c.mllp_port for c in load_hospitals(folder) if c.mllp_port}
    owners: dict[int, list[str]] = {}
    for hospital, port in wanted.items():
        owners.setdefault(port, []).append(hospital)
    ports = {}
    for hospital, port in sorted(wanted.items()):
        if not HOSPITAL_ID.fullmatch(hospital) or not 0 < port < 65536 or len(owners[port]) > 1:
            log.error(
                "no MLLP listener for %s: a port of 1..65535 that no other hospital has, for a hospital id",
                hospital[:64],
                extra={"event": "mllp_port_invalid", "port": port},
            )
            continue
        ports[hospital] = port
    return ports
