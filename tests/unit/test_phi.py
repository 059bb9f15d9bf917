"""The PHI scanner's matcher, log and metric-label scans, without a broker (topics: tests/integration)."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, generate_latest

from services.cli.scenario import formats
from tests.support.phi import Hit, PhiMatcher, scan_logs, scan_metrics_text

IDENTITY = formats.Identity(
    mrn="CCF-0048213",
    given="Erzsébet",
    family="Szabadkai",
    phone="+1-562-555-0187",
    birth_date=date(1958, 6, 2),
    street="412 Quarry Hollow Road",
)


def test_every_form_of_an_identity_is_found_once_per_occurrence() -> None:
    matcher = PhiMatcher(IDENTITY.strings())
    text = json.dumps({"name": "SZABADKAI, Erzsébet", "born": "19580602", "mrn": "ccf-0048213"}).encode()
    assert sorted(i for i, _ in matcher.find(text)) == ["19580602", "CCF-0048213", "Erzsébet", "Szabadkai"]
    assert matcher.found(json.dumps("Erzsébet", ensure_ascii=False)) == {"Erzsébet"}  # raw UTF-8 too
    assert matcher.found("PID|1||a1b2c3^^^HOSP^MR||PSEUDONYM^^") == set()


def test_case_sensitive_when_asked_and_blank_identifiers_are_ignored() -> None:
    matcher = PhiMatcher(["Szabadkai", "", "   "], ignore_case=False)
    assert matcher.found(b"SZABADKAI szabadkai") == set()
    assert matcher.found(b"Szabadkai") == {"Szabadkai"}
    assert PhiMatcher([]).found(b"anything") == set()


def test_logs_name_the_file_and_line_and_other_files_are_not_read(tmp_path: Path) -> None:
    (tmp_path / "log").mkdir()
    (tmp_path / "log" / "ingest-8101.log").write_text('{"msg": "ok"}\n{"msg": "ok"}\n{"patient": "Szabadkai"}\n')
    (tmp_path / "log" / "rotated").write_text("x\n+1-562-555-0187\n")  # in a log folder: a log, whatever its name
    (tmp_path / "service.log.1").write_text("CCF-0048213\n")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "store.json").write_text("Szabadkai")  # not a log
    hits = scan_logs(PhiMatcher(IDENTITY.strings()), tmp_path)
    assert sorted(hits) == sorted(
        [
            Hit("Szabadkai", "log", f"{tmp_path / 'log' / 'ingest-8101.log'}:3"),
            Hit("+1-562-555-0187", "log", f"{tmp_path / 'log' / 'rotated'}:2"),
            Hit("CCF-0048213", "log", f"{tmp_path / 'service.log.1'}:1"),
        ]
    )


def test_metric_label_values_are_scanned() -> None:
    registry = CollectorRegistry()
    counter = Counter("aimass_things", "things", ["hospital", "reason"], registry=registry)
    counter.labels("cleveland", "schema").inc()
    counter.labels("cleveland", "bad value for Szabadkai").inc()
    hits = scan_metrics_text(PhiMatcher(IDENTITY.strings()), generate_latest(registry).decode(), "ingest")
    assert sorted(hits) == [
        Hit("Szabadkai", "metric", f"ingest aimass_things_{sample}{{reason}}") for sample in ("created", "total")
    ]
