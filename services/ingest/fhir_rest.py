"""FHIR REST intake: a hospital's posted Bundle, resource or NDJSON upload checked with the stream's reader, written to
``ingest.raw`` and answered after the broker's acknowledgement (the routes' domain logic; HTTP-free).

What is refused is not kept (the sender has it and is told which element is wrong, as a FHIR ``OperationOutcome``);
it leaves an audit event as a document the stream rejects does. A transaction Bundle is all or nothing: one bad
entry refuses it whole. Any other Bundle goes on without its bad entries, which the stream dead-letters alone (the
answer lists them as warnings).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from services.ingest import fhir_intake as rules
from services.ingest.documents import Ingested
from services.ingest.doors import Door, Submission, submission
from services.ingest.fhir import FHIR_CONTENT_TYPE
from services.ingest.metrics import DoorMetrics
from shared.errors import RejectedInput

log = logging.getLogger("aimass.ingest")

UNAVAILABLE = "the document could not be stored now (the platform's broker did not acknowledge it): send it again"


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any]
    fhir: bool = True  # an OperationOutcome (application/fhir+json) rather than the intake's own JSON


def refused(rejected: RejectedInput, status: int | None = None) -> Answer:
    outcome = rules.operation_outcome([rules.issue(rejected.reason, rejected.reason_class)])
    return Answer(status or rules.status_of(rejected.reason_class), outcome)


def unavailable() -> Answer:
    return Answer(
        503, rules.operation_outcome([{"severity": "error", "code": "transient", "diagnostics": UNAVAILABLE}])
    )


class FhirIntake:
    def __init__(
        self, door: Door, metrics: DoorMetrics, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    ) -> None:
        self.door = door
        self.metrics = metrics
        self.clock = clock

    async def submit(self, hospital: str, body: bytes, content_type: str, path_type: str | None = None) -> Answer:
        """``POST /fhir`` (a Bundle) or ``POST /fhir/<type>`` (one resource) as ``hospital``."""
        if rules.media_type(content_type) not in rules.FHIR_JSON:
            reason = f"content-type must be application/fhir+json (one of {', '.join(rules.FHIR_JSON)})"
            return refused(RejectedInput(reason, "unsupported"), 415)
        try:
            payload = rules.posted_resource(body, path_type)
        except RejectedInput as rejected:
            item = submission(body, hospital, rules.event_id({}, body), FHIR_CONTENT_TYPE, self.clock())
            await self._audit_refusal(item, rejected)
            return refused(rejected)
        item = submission(body, hospital, rules.event_id(payload, body), FHIR_CONTENT_TYPE, self.clock())
        try:
            ingested = await self.door.check(item)
        except RejectedInput as rejected:
            await self._audit_refusal(item, rejected)
            return refused(rejected)
        if payload.get("type") == "transaction" and ingested.rejected:  # all or nothing (FHIR's transaction rule)
            issues = [rules.issue(p.reason, p.reason_class) for p in ingested.rejected]
            reason = "; ".join(p.reason for p in ingested.rejected[:3])
            await self._audit_refusal(item, RejectedInput(f"FHIR transaction refused whole: {reason}", "schema"))
            return Answer(422, rules.operation_outcome(issues))
        try:
            await self.door.store([item])
        except Exception:
            log.exception("a posted FHIR document could not be stored", extra={"event": "fhir_not_stored"})
            return unavailable()
        self.metrics.fhir_document(hospital, "accepted")
        warnings = [rules.issue(p.reason, p.reason_class, "warning") for p in ingested.rejected]
        body_out = {"id": item.event_id, "records": len(ingested.records)}
        if warnings:
            body_out["outcome"] = rules.operation_outcome(warnings)
        return Answer(202, body_out, fhir=False)

    async def bulk_import(self, hospital: str, body: bytes, content_type: str) -> Answer:
        """``POST /fhir/$import``: NDJSON, one resource per line; each document it becomes checked and written on
        its own. 202 lists what was accepted and an issue per refused line; 422 when no line was usable."""
        if rules.media_type(content_type) not in rules.NDJSON:
            reason = f"content-type must be application/fhir+ndjson (one of {', '.join(rules.NDJSON)})"
            return refused(RejectedInput(reason, "unsupported"), 415)
        documents, problems = rules.import_documents(body)
        now = self.clock()
        items = [submission(d.body, hospital, d.event_id, FHIR_CONTENT_TYPE, now) for d in documents]
        # Every document read in one worker thread: thousands of lines must not stall the event loop (the
        # consumer's heartbeats, the other requests).
        checked = await asyncio.to_thread(self._check_all, items)
        issues = [rules.issue(p.reason, p.reason_class, where=f"line {p.line}") for p in problems]
        accepted: list[Submission] = []
        refused_items: list[tuple[Submission, RejectedInput]] = []
        records, lines_refused = 0, len(problems)
        for document, item, result in zip(documents, items, checked, strict=True):
            if isinstance(result, RejectedInput):
                refused_items.append((item, result))
                lines = rules.lines_of(document, result.reason)
                lines_refused += len(lines)
                for line in lines:
                    issues.append(
                        rules.issue(rules.without_entry(result.reason), result.reason_class, where=f"line {line}")
                    )
                continue
            accepted.append(item)
            records += len(result.records)
            for part in result.rejected:
                reason = rules.without_entry(part.reason)
                for line in rules.lines_of(document, part.reason, part.label):
                    issues.append(rules.issue(reason, part.reason_class, "warning", where=f"line {line}"))
        for item, rejected in refused_items:
            await self._audit_refusal(item, rejected)
        if not accepted:
            return Answer(422, rules.operation_outcome(issues or [rules.issue("NDJSON: no line to ingest", "empty")]))
        try:
            await self.door.store(accepted)
        except Exception:
            log.exception("an NDJSON upload could not be stored", extra={"event": "fhir_not_stored"})
            return unavailable()
        self.metrics.fhir_document(hospital, "accepted", len(accepted))
        answer: dict[str, Any] = {
            "documents": len(accepted),
            "records": records,
            "lines_refused": lines_refused,
            "ids": [item.event_id for item in accepted],
        }
        if issues:
            answer["outcome"] = rules.operation_outcome(issues)
        return Answer(202, answer, fhir=False)

    def _check_all(self, items: Sequence[Submission]) -> list[Ingested | RejectedInput]:
        results: list[Ingested | RejectedInput] = []
        for item in items:
            try:
                results.append(self.door.check_now(item))
            except RejectedInput as rejected:
                results.append(rejected)
        return results

    async def _audit_refusal(self, item: Submission, rejected: RejectedInput) -> None:
        """Best effort, as for a refused token: the answer goes back whether or not the broker took the event."""
        self.metrics.fhir_document(item.hospital, "rejected")
        try:
            await self.door.audit_rejected(item, rejected)
        except Exception:
            log.exception("a refused FHIR document could not be audited", extra={"event": "fhir_audit_failed"})
