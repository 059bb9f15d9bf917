"""Render one example report (a real UCI record, models trained on the UCI data) to a folder, for docs/images.

    .venv/bin/python -m research.report_example /tmp/report-example
    chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=900,1580 \\
        --screenshot=docs/images/report.png file:///tmp/report-example/report.html

Writes ``report.html``, ``report.pdf`` and ``fhir.json`` (the FHIR Bundle) and prints the report's summary. The
models are the small ones of ``tests/support/factories/report.py`` (the first takes about 7 s on 2 cores, torch's
first training and ONNX export; the others a fraction of a second); ``tests/unit/report/test_report_example.py`` runs
it.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from services.report.adapters.file_store import FileReportStore
from services.report.adapters.registry_models import RegistryModels
from services.report.handlers import Reporter
from services.report.metrics import ReportMetrics
from shared.metrics import ServiceMetrics
from shared.schemas.reports import ReportMessage
from shared.settings import Settings
from shared.tasks import load_tasks
from tests.support.factories.report import WHEN, fused_for, install_models, record_from

SITES = ("pooled", "cleveland", "hungary", "va-long-beach")
FILES = ("report.html", "report.pdf", "fhir.json")


def main(out: Path, hospital: str = "va-long-beach", index: int = 14) -> ReportMessage:
    """The report of record ``index`` of ``hospital``, fused from the ``SITES`` models, written into ``out``."""
    with tempfile.TemporaryDirectory() as var_dir:
        settings = Settings(var_dir=Path(var_dir))
        install_models(settings.data_path / "models", SITES)
        store = FileReportStore.under(settings)
        metrics = ReportMetrics(ServiceMetrics("report").registry)
        reporter = Reporter(load_tasks(), RegistryModels(settings), store, metrics, "http://127.0.0.1:8106")
        message = reporter.report(fused_for(record_from(hospital, index), SITES), WHEN)
        out.mkdir(parents=True, exist_ok=True)
        for kind, name in (("html", "report.html"), ("fhir", "fhir.json")):
            (out / name).write_bytes(store.read(message.report_id, kind) or b"")
        (out / "report.pdf").write_bytes(reporter.pdf(message.report_id) or b"")  # rendered on demand
    print(message.summary)
    return message


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "report-example"))
