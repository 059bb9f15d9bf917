"""clean's own Prometheus series (names from the project's metric list). Labels: hospital ids, UCUM units, feature
and analyte names, duplicate kinds; never patient values."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter

from services.clean.cleaning import Cleaned
from shared.metrics import MAX_HOSPITAL_LABELS, BoundedLabel

MAX_UNITS = 200  # UCUM annotations ("mg{anything}/dL") make any text a valid unit


class CleanMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.hospital = BoundedLabel(MAX_HOSPITAL_LABELS)
        self.unit = BoundedLabel(MAX_UNITS)
        self.records = Counter(
            "aimass_clean_records_total", "Clean records emitted, by hospital", ["hospital"], registry=registry
        )
        self.conversions = Counter(
            "aimass_clean_unit_conversions_total",
            "Values converted to a canonical unit",
            ["from_unit", "to_unit"],
            registry=registry,
        )
        self.unmapped = Counter(
            "aimass_clean_unmapped_codes_total",
            "Local codes no code table maps (kept, flagged)",
            ["hospital"],
            registry=registry,
        )
        self.implausible = Counter(
            "aimass_clean_implausible_total",
            "Implausible values treated as missing, by hospital and feature or analyte",
            ["hospital", "feature"],
            registry=registry,
        )
        self.duplicates = Counter(
            "aimass_clean_duplicates_total",
            "Duplicates dropped: same ce_id (event_id), same content under a new id (content)",
            ["kind"],
            registry=registry,
        )
        for kind in ("event_id", "content"):
            self.duplicates.labels(kind)

    def emitted(self, cleaned: Cleaned) -> None:
        hospital = self.hospital(cleaned.record.hospital)
        self.records.labels(hospital).inc()
        for from_unit, to_unit in cleaned.conversions:
            self.conversions.labels(self.unit(from_unit), self.unit(to_unit)).inc()
        if cleaned.unmapped_codes:
            self.unmapped.labels(hospital).inc(cleaned.unmapped_codes)
        for name in cleaned.implausible:
            self.implausible.labels(hospital, name).inc()
