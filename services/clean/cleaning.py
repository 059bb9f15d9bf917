"""A canonical record to a clean one (pure): codes mapped, units converted, quality flagged, features built."""

from __future__ import annotations

from dataclasses import dataclass, field

from services.clean.analytes import ANALYTES, Analyte
from services.clean.codes import CodeBook
from services.clean.features import applies, task_features
from services.clean.normalize import canonical_targets, normalize_observation, unmapped
from shared.schemas.records import CanonicalRecord, CleanRecord, Condition, QualityFlag, TaskFeatures
from shared.tasks import TaskSpec, canonical_units


@dataclass(frozen=True)
class Cleaned:
    """The clean record and what happened on the way, for the metrics."""

    record: CleanRecord
    conversions: list[tuple[str, str]] = field(default_factory=list)
    implausible: list[str] = field(default_factory=list)  # analyte or feature names

    @property
    def unmapped_codes(self) -> int:
        return sum(flag.kind == "unmapped_code" for flag in self.record.quality_flags)


class Cleaner:
    def __init__(
        self, tasks: dict[str, TaskSpec], code_book: CodeBook, analytes: tuple[Analyte, ...] = ANALYTES
    ) -> None:
        self.tasks = tasks
        self.code_book = code_book
        self.targets = canonical_targets(canonical_units(tasks.values()), analytes)

    def clean(self, record: CanonicalRecord) -> Cleaned:
        codes = self.code_book.for_hospital(record.hospital)
        normalized = [normalize_observation(o, codes, self.targets) for o in record.observations]
        flags: list[QualityFlag] = [flag for n in normalized for flag in n.flags]
        conditions: list[Condition] = []
        for condition in record.conditions:
            mapped = codes.translate(condition.code)
            if mapped is None:
                flags.append(unmapped(condition.code, codes.label))
            conditions.append(condition if mapped is None else condition.model_copy(update={"code": mapped}))
        kept = {name: getattr(record, name) for name in CanonicalRecord.model_fields}
        kept.update(observations=[n.observation for n in normalized], conditions=conditions)
        normalized_record = CleanRecord(**kept)
        features: dict[str, TaskFeatures] = {}
        implausible = [n.implausible for n in normalized if n.implausible is not None]
        for name, task in self.tasks.items():
            if applies(normalized_record, task):
                result = task_features(normalized_record, task)
                features[name] = result.features
                flags.extend(result.flags)
                implausible.extend(result.implausible)
        # Every part was validated above: copying skips validating the whole record a second time.
        record_out = normalized_record.model_copy(update={"quality_flags": flags, "features": features})
        conversions = [n.conversion for n in normalized if n.conversion is not None]
        return Cleaned(record_out, conversions, implausible)
