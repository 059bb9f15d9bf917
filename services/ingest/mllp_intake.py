"""One message received on a hospital's MLLP port: judged, written, acknowledged (the listener's domain logic).

The order is what makes an ACK trustworthy: the message is judged by the stream's own reader, written (to
``ingest.raw``, or to the dead-letter topic with the reason), the broker's acknowledgement awaited, and only then
is the ACK built. A sender that gets no ACK (a crash in between) re-sends; the message's ce_id is its MSH-10, so the
re-sent copy yields the same record ids and clean absorbs it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime

from services.ingest import mllp
from services.ingest.doors import Door, Submission, submission
from services.ingest.hl7v2 import HL7_CONTENT_TYPE
from services.ingest.metrics import DoorMetrics
from services.ingest.mllp import AckError, Outcome, Verdict
from shared.errors import RejectedInput

log = logging.getLogger("aimass.ingest")

NOT_STORED = (
    "the message could not be stored now (the platform's broker did not acknowledge it); nothing was kept: "
    "send it again"
)


class MllpIntake:
    def __init__(
        self, door: Door, metrics: DoorMetrics, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    ) -> None:
        self.door = door
        self.metrics = metrics
        self.clock = clock

    async def receive(self, hospital: str, block: bytes) -> list[bytes]:
        """The acknowledgements for one message of ``hospital`` (whose port it came in on), each to be written
        back in order; none when MSH-15/MSH-16 ask for none."""
        now = self.clock()
        verdict, item = await self.judge(hospital, block, now)
        try:
            if verdict.outcome is Outcome.STORED:
                await self.door.store([item])
            else:
                await self.door.keep_rejected(item, RejectedInput(verdict.reason, verdict.reason_class))
        except Exception:  # the broker: nothing is acknowledged that was not stored
            log.exception("an MLLP message could not be stored", extra={"event": "mllp_not_stored"})
            error = AckError(mllp.APPLICATION_INTERNAL_ERROR, NOT_STORED)
            verdict = replace(verdict, outcome=Outcome.NOT_STORED, errors=[error])
        acks = mllp.acknowledgements(verdict, now)
        codes = mllp.acknowledgement_codes(verdict)
        self.metrics.mllp_message(hospital, codes[0] if codes else "none")
        return acks

    def oversized(self, hospital: str, limit: int) -> list[bytes]:
        """The answer to a frame over the limit, which the listener dropped unread (it would be rejected as
        oversized, and holding it to dead-letter it is what the limit is there to prevent)."""
        reason = f"MLLP: a message over {limit} bytes (AIMASS_MAX_MESSAGE_BYTES) is not read; nothing was kept"
        verdict = Verdict(Outcome.INVALID, None, reason, "oversized", [mllp.ack_error(reason, "oversized")])
        self.metrics.mllp_message(hospital, "AE")
        return mllp.acknowledgements(verdict, self.clock())

    async def judge(self, hospital: str, block: bytes, now: datetime) -> tuple[Verdict, Submission]:
        """The verdict on ``block`` and the document as it will be written (its ce_id the MSH-10)."""
        segments = mllp.segments_of(block)
        try:
            header = mllp.read_header(block)
        except RejectedInput as unreadable:
            item = submission(block, hospital, mllp.unreadable_event_id(block), HL7_CONTENT_TYPE, now)
            verdict = Verdict(
                Outcome.INVALID,
                None,
                unreadable.reason,
                "malformed",
                [mllp.ack_error(unreadable.reason, "malformed")],
            )
            return verdict, item
        usable_id = 0 < len(header.control_id) <= mllp.MAX_CONTROL_ID and header.control_id.isprintable()
        event_id = mllp.event_id(header.control_id) if usable_id else mllp.unreadable_event_id(block)
        item = submission(block, hospital, event_id, HL7_CONTENT_TYPE, now)
        refused = mllp.refusal(header, segments)
        if refused is not None:
            return refused, item
        try:
            ingested = await self.door.check(item)
        except RejectedInput as rejected:
            outcome = Outcome.UNSUPPORTED if rejected.reason_class == "unsupported" else Outcome.INVALID
            error = mllp.ack_error(rejected.reason, rejected.reason_class)
            return Verdict(outcome, header, rejected.reason, rejected.reason_class, [error]), item
        warnings = [mllp.ack_error(part.reason, part.reason_class, "W") for part in ingested.rejected]
        return Verdict(Outcome.STORED, header, errors=warnings), item
