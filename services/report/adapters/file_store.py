"""Reports on disk under ``<data dir>/reports``: one folder per report, and a per-patient index.

``<id>/view.json`` (the view model), ``report.html``, ``fhir.json`` (the transaction Bundle) and ``message.json``
(what was published); ``by-patient/<pseudonym>/<id>.json`` one small entry per report. Files are written whole
(temporary file, then rename) and the index entry last, so a reader never sees half a report and a report listed for
a patient is always complete.

The PDF is rendered on first request and kept as ``report-<digest of view.json>.pdf``: a kept PDF is served only
for the view it was rendered from, so a report made again with other content never serves a stale PDF.
``report.pdf`` (reports stored before PDFs were rendered on demand) is served until the report is made again with
another view.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from services.report.ports import ReportEntry, ReportFiles
from services.report.view import ReportView
from shared.files import write_atomically
from shared.schemas.reports import ReportMessage
from shared.settings import Settings

SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
FILES = {"html": "report.html", "fhir": "fhir.json"}
LEGACY_PDF = "report.pdf"
VIEW = "view.json"


def view_bytes(view: ReportView) -> bytes:
    return view.model_dump_json(indent=1).encode()


def pdf_name(view_json: bytes) -> str:
    return f"report-{hashlib.sha256(view_json).hexdigest()[:24]}.pdf"


def safe(identifier: str) -> bool:
    """Ids arrive in URLs: only plain names reach the file system (no ``..``, no separators)."""
    return bool(SAFE_ID.match(identifier)) and ".." not in identifier


class FileReportStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    @classmethod
    def under(cls, settings: Settings) -> FileReportStore:
        return cls(settings.data_path / "reports")

    def save(self, view: ReportView, files: ReportFiles, message: ReportMessage, entry: ReportEntry) -> None:
        folder = self.root / view.report_id
        content = view_bytes(view)
        previous = folder / VIEW
        if previous.is_file() and previous.read_bytes() != content:
            for kept in folder.glob("report*.pdf"):  # rendered from the view this one replaces
                kept.unlink(missing_ok=True)
        for kind, name in FILES.items():
            write_atomically(folder / name, getattr(files, kind))
        write_atomically(previous, content)
        write_atomically(folder / "message.json", message.model_dump_json().encode())
        index_entry = self.root / "by-patient" / view.patient / f"{view.report_id}.json"
        write_atomically(index_entry, entry.model_dump_json().encode())

    def read(self, report_id: str, kind: str) -> bytes | None:
        if not safe(report_id) or kind not in (*FILES, "pdf"):
            return None
        folder = self.root / report_id
        if kind != "pdf":
            path = folder / FILES[kind]
            return path.read_bytes() if path.is_file() else None
        if not (folder / VIEW).is_file():
            return None
        for path in (folder / pdf_name((folder / VIEW).read_bytes()), folder / LEGACY_PDF):
            if path.is_file():
                return path.read_bytes()
        return None

    def view(self, report_id: str) -> ReportView | None:
        path = self.root / report_id / VIEW
        return ReportView.model_validate_json(path.read_bytes()) if safe(report_id) and path.is_file() else None

    def keep_pdf(self, view: ReportView, pdf: bytes) -> None:
        write_atomically(self.root / view.report_id / pdf_name(view_bytes(view)), pdf)

    def for_patient(self, patient: str) -> list[ReportEntry]:
        if not safe(patient):
            return []
        entries = [
            ReportEntry.model_validate_json(p.read_bytes()) for p in (self.root / "by-patient" / patient).glob("*.json")
        ]
        return sorted(entries, key=lambda e: (e.created_at, e.report_id), reverse=True)

    def patients(self, hospital: str | None = None) -> dict[str, list[ReportEntry]]:
        # One small index file per report, no view read: a search costs a directory walk and a parse per report.
        found: dict[str, list[ReportEntry]] = {}
        index = self.root / "by-patient"
        for path in index.glob("*/*.json") if index.is_dir() else ():
            entry = ReportEntry.model_validate_json(path.read_bytes())
            if hospital is None or entry.hospital == hospital:
                found.setdefault(path.parent.name, []).append(entry)
        return {
            patient: sorted(entries, key=lambda e: (e.created_at, e.report_id), reverse=True)
            for patient, entries in sorted(found.items())
        }
