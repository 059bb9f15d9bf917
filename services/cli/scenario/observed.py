"""What came out of the platform for this run's messages (pure: fed decoded events, no Kafka here).

Ingest's audit event for each message (by its ``ce_id``) names the records it became; everything downstream is
matched by record id, so events of other runs or other producers on the same topics are ignored.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from pydantic import ValidationError

from services.cli.scenario.plan import Message, Phase, Scenario
from shared.schemas import CleanRecord
from shared.schemas.audit import AuditEvent
from shared.schemas.predictions import FusedPrediction, Prediction
from shared.schemas.reports import ReportMessage
from shared.topics import CE_ID, CE_TYPE, DLQ_ERROR, DLQ_SERVICE, Topic, event_type

INGEST_AUDIT = event_type("audit", "recorded")
FOLLOWED = (
    Topic.AUDIT,
    Topic.DEADLETTER,
    Topic.RECORDS_CLEAN,
    Topic.PREDICTIONS,
    Topic.PREDICTIONS_FUSED,
    Topic.REPORTS,
)


@dataclass(frozen=True)
class DeadLetter:
    message: Message
    service: str
    reason: str


@dataclass
class Observed:
    scenario: Scenario
    task: str = "heart_disease"
    sent_at: dict[str, float] = field(default_factory=dict)  # ce_id -> epoch seconds when sent
    audits: dict[str, AuditEvent] = field(default_factory=dict)  # ce_id -> its audit event
    phase_of_record: dict[str, Phase] = field(default_factory=dict)
    message_of_record: dict[str, Message] = field(default_factory=dict)
    clean: dict[str, CleanRecord] = field(default_factory=dict)
    deadletters: list[DeadLetter] = field(default_factory=list)
    released_versions: set[tuple[str, str]] = field(default_factory=set)  # (site, version) trained by this run
    predictions: dict[str, dict[str, float]] = field(default_factory=lambda: defaultdict(dict))  # record -> site -> p
    fused: dict[str, FusedPrediction] = field(default_factory=dict)
    reports: dict[str, ReportMessage] = field(default_factory=dict)
    report_at: dict[str, float] = field(default_factory=dict)  # record id -> epoch seconds of the report
    _messages: dict[str, Message] = field(default_factory=dict)
    _deadlettered: set[tuple[str, str]] = field(default_factory=set)

    def __post_init__(self) -> None:
        self._messages = {m.ce_id: m for m in self.scenario.all()}

    # -- feeding -------------------------------------------------------------------------------------------------
    def observe(self, topic: Topic, headers: dict[str, str], value: bytes, timestamp_ms: int) -> None:
        try:
            if topic is Topic.AUDIT:
                if headers.get(CE_TYPE) == INGEST_AUDIT:  # access audit events share the topic
                    self._audit(AuditEvent.model_validate_json(value))
            elif topic is Topic.DEADLETTER:
                self._deadletter(headers)
            elif topic is Topic.RECORDS_CLEAN:
                record = CleanRecord.model_validate_json(value)
                self.clean[record.record_id] = record
            elif topic is Topic.PREDICTIONS:
                prediction = Prediction.model_validate_json(value)
                if (prediction.model.site, prediction.model.version) in self.released_versions:
                    self.predictions[prediction.record_id][prediction.model.site] = prediction.probability
            elif topic is Topic.PREDICTIONS_FUSED:
                fused = FusedPrediction.model_validate_json(value)
                if all((c.model.site, c.model.version) in self.released_versions for c in fused.contributions):
                    self.fused[fused.record_id] = fused
            elif topic is Topic.REPORTS:
                # Kept whatever came before it: one fetch returns the partitions of several topics in no set order,
                # so a report can be read ahead of its fused result or even its audit; reported() matches later.
                report = ReportMessage.model_validate_json(value)
                if report.record_id not in self.reports:
                    self.reports[report.record_id] = report
                    self.report_at[report.record_id] = timestamp_ms / 1000
        except ValidationError:
            return  # someone else's event on a shared topic: not this run's business

    def _audit(self, event: AuditEvent) -> None:
        message = self._messages.get(event.message_id)
        if message is None:
            return
        self.audits[event.message_id] = event
        for record_id in event.record_ids:
            self.phase_of_record[record_id] = message.phase
            self.message_of_record[record_id] = message

    def _deadletter(self, headers: dict[str, str]) -> None:
        ce_id = headers.get(CE_ID, "")
        message = self._messages.get(ce_id.split("#", 1)[0])
        if message is None or (ce_id, headers.get(DLQ_ERROR, "")) in self._deadlettered:
            return  # not ours, or the same dead letter again (a re-delivery)
        self._deadlettered.add((ce_id, headers.get(DLQ_ERROR, "")))
        self.deadletters.append(DeadLetter(message, headers.get(DLQ_SERVICE, "?"), headers.get(DLQ_ERROR, "?")))

    # -- progress ------------------------------------------------------------------------------------------------
    def records_of(self, phase: Phase) -> list[str]:
        return [r for r, p in self.phase_of_record.items() if p == phase]

    def audited(self, messages: list[Message]) -> int:
        return sum(m.ce_id in self.audits for m in messages)

    def cleaned(self, phase: Phase) -> int:
        return sum(r in self.clean for r in self.records_of(phase))

    def scored(self) -> list[str]:
        """Held-out records that clean gave this task's features: the ones infer scores and fuse joins."""
        return [r for r in self.records_of("held-out") if r in self.clean and self.task in self.clean[r].features]

    def reported(self) -> int:
        """Held-out records with a report of a fused result from this run's models."""
        return len(self.own_reports())

    def stages(self) -> str:
        """How far the held-out records got, to say which service a stalled run waits on."""
        scored = self.scored()
        sites = {site for site, _ in self.released_versions}
        return (
            f"{sum(sites <= self.predictions.get(r, {}).keys() for r in scored)} of {len(scored)} scored by all "
            f"{len(sites)} models (infer), {sum(r in self.fused for r in scored)} fused (fuse), "
            f"{sum(r in self.reports for r in scored)} reported (report)"
        )

    def broken_answered(self) -> int:
        answered = {d.message.ce_id for d in self.deadletters}
        return sum(m.ce_id in answered for m in self.scenario.broken)

    # -- results -------------------------------------------------------------------------------------------------
    def label_of(self, record_id: str) -> int | None:
        features = self.clean[record_id].features.get(self.task)
        return None if features is None or features.label is None else int(features.label > 0.5)

    def per_hospital_and_format(self) -> list[tuple[str, str, int, int, int, int]]:
        """(hospital, format, messages, records ingested, parts dead-lettered, records clean)."""
        rows: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0, 0])
        for message in self.scenario.all():
            row = rows[message.hospital, message.format]
            row[0] += 1
            audit = self.audits.get(message.ce_id)
            if audit:
                row[1] += audit.records
                row[2] += audit.rejected_parts + (audit.outcome == "rejected")
                row[3] += sum(r in self.clean for r in audit.record_ids)
        return [(h, f, *counts) for (h, f), counts in sorted(rows.items())]

    def training_records(self) -> list[CleanRecord]:
        return [self.clean[r] for r in self.records_of("training") if r in self.clean]

    def own_reports(self) -> list[ReportMessage]:
        """Reports of this run's held-out records, by record id."""
        return [self.reports[r] for r in sorted(self.scored()) if r in self.reports and r in self.fused]

    def hospital_of(self, report: ReportMessage) -> str:
        """The hospital of a report's patient: whose token may read it."""
        return self.fused[report.record_id].hospital

    def latencies(self) -> list[float]:
        """Seconds from sending a held-out message to the report of each of its records."""
        out = []
        for report in self.own_reports():  # infer also scores training records, with whatever models serve then
            message = self.message_of_record[report.record_id]
            if message.ce_id in self.sent_at:
                out.append(self.report_at[report.record_id] - self.sent_at[message.ce_id])
        return out

    def auc_table(self) -> tuple[list[str], list[tuple[str, dict[str, float | None]]], Counter[str]]:
        """(columns, rows, positives per column): AUC of each model and of the fused result on the held-out
        records, over all hospitals and per hospital."""
        import numpy as np

        from services.train.evaluate import roc_auc  # numpy only; the CLI already has train's dependencies

        records = [r for r in self.scored() if r in self.fused and self.label_of(r) is not None]
        hospitals = sorted({self.clean[r].hospital for r in records})
        columns = ["all", *hospitals]
        members = {"all": records, **{h: [r for r in records if self.clean[r].hospital == h] for h in hospitals}}
        counts: Counter[str] = Counter({f"{c} n": len(members[c]) for c in columns})
        counts.update({f"{c} positive": sum(self.label_of(r) for r in members[c]) for c in columns})
        sites = sorted({s for r in records for s in self.predictions.get(r, {})})

        def auc(scores: dict[str, float], column: str) -> float | None:
            chosen = [r for r in members[column] if r in scores]
            if not chosen:
                return None
            return roc_auc(
                np.array([self.label_of(r) for r in chosen], dtype=float),
                np.array([scores[r] for r in chosen], dtype=float),
            )

        rows: list[tuple[str, dict[str, float | None]]] = []
        for site in sites:
            scores = {r: self.predictions[r][site] for r in records if site in self.predictions.get(r, {})}
            rows.append((site, {c: auc(scores, c) for c in columns}))
        fused = {r: self.fused[r].probability for r in records}
        rows.append(("fused", {c: auc(fused, c) for c in columns}))
        return columns, rows, counts

    def review_rate(self) -> float:
        fused = [self.fused[r] for r in self.scored() if r in self.fused]
        return sum(f.needs_review for f in fused) / len(fused) if fused else 0.0


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[max(0, min(98, round(q) - 1))]
