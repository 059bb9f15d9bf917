"""The Wisconsin Diagnostic Breast Cancer rows (scikit-learn's ``load_breast_cancer``) as one hospital's documents.

Hospital ``wisconsin``; every nucleus measurement is an observation coded ``wdbc-<feature name>`` in the project's
own system (as ``tasks/breast_cancer.yaml`` reads them); the label is the observation ``wdbc-diagnosis-malignant``,
1 for malignant (scikit-learn's target 0) and 0 for benign.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from shared.schemas.records import AIMASS_CODES

HOSPITAL = "wisconsin"
DIAGNOSIS_CODE = "wdbc-diagnosis-malignant"


def code_of(feature_name: str) -> str:
    """``mean concave points`` -> ``wdbc-mean-concave-points``."""
    return "wdbc-" + feature_name.replace(" ", "-")


def documents(limit: int | None = None) -> list[dict[str, Any]]:
    """One ``application/json`` document (the project's ``IncomingRecord``) per aspirate."""
    try:
        from sklearn.datasets import load_breast_cancer
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise SystemExit("the WDBC data needs the 'demo' extra: .venv/bin/uv pip install -e '.[demo]'") from error
    data = load_breast_cancer()
    start = datetime(2026, 2, 2, 9, 0, tzinfo=UTC)
    out = []
    for index, (row, target) in enumerate(zip(data.data, data.target, strict=True)):
        if limit is not None and index >= limit:
            break
        when = (start + timedelta(minutes=index)).isoformat()
        observations = [
            {
                "code": {"system": AIMASS_CODES, "code": code_of(name), "display": name},
                "value": float(value),
                "unit": "1",
                "time": when,
            }
            for name, value in zip(data.feature_names, row, strict=True)
        ]
        observations.append(
            {
                "code": {"system": AIMASS_CODES, "code": DIAGNOSIS_CODE, "display": "Malignant"},
                "value": 1.0 if target == 0 else 0.0,
                "unit": "1",
                "time": when,
            }
        )
        out.append({"patient_id": f"WDBC-{index:05d}", "recorded_at": when, "observations": observations})
    return out
