"""Reports on disk under ``<data dir>/reports``: one folder per report, and a per-patient index.

``<id>/view.json`` (the view model), ``report.html``, ``report.pdf``, ``fhir.json`` (the transaction Bundle) and
``message.json`` (what was published); ``by-patient/<pseudonym>/<id>.json`` one small entry per report. Files are
written whole (temporary file, then rename) and the index entry last, so a reader never sees half a report and a
report listed for a patient is always complete.
"""

from __future__ import annotations

import re
from pathlib import Path

from services.report.store import ReportEntry, ReportFiles
from services.report.view import ReportView
from shared.files import write_atomically
from shared.schemas.reports import ReportMessage
from shared.settings import Settings

SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
FILES = {"html": "report.html", "pdf": "report.pdf", "fhir": "fhir.json"}




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
        for kind, name in FILES.items():
            write_atomically(folder / name, getattr(files, kind))
        write_atomically(folder / "view.json", view.model_dump_json(indent=1).encode())
        write_atomically(folder / "message.json", message.model_dump_json().encode())
        index_entry = self.root / "by-patient" / view.patient / f"{view.report_id}.json"
        write_atomically(index_entry, entry.model_dump_json().encode())

    def read(self, report_id: str, kind: str) -> bytes | None:
        if not safe(report_id) or kind not in FILES:
            return None
        path = self.root / report_id / FILES[kind]
        return path.read_bytes() if path.is_file() else None

    def view(self, report_id: str) -> ReportView | None:
        path = self.root / report_id / "view.json"
        return ReportView.model_validate_json(path.read_bytes()) if safe(report_id) and path.is_file() else None

    def for_patient(self, patient: str) -> list[ReportEntry]:
        if not safe(patient):
            return []
        entries = [ReportEntry.model_validate_json(p.read_bytes())
                   for p in (self.root / "by-patient" / patient).glob("*.json")]
        return sorted(entries, key=lambda e: (e.created_at, e.report_id), reverse=True)
