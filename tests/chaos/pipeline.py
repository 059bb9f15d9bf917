"""The running pipeline a chaos test breaks: publish a batch, watch it come out, read each service's readiness."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import httpx
from prometheus_client.parser import text_string_to_metric_families

from shared.settings import Settings
from shared.topics import CE_ID, CE_SOURCE, CONTENT_TYPE, JSON, Topic, topic_name
from tests.chaos.documents import Document
from tests.chaos.reconcile import TopicAccount, missing, reconcile
from tests.chaos.tally import TopicTally
from tests.chaos.trace import trace
from tests.support.kafka import producer
from tests.support.processes import ServiceProcess
from tests.support.stack import PrivateStack

STREAMING_SERVICES = ["ingest", "clean", "infer", "fuse", "report"]
MODEL_SITES = ("cleveland", "hungary", "pooled")
OUTPUT_OF = {
    "ingest": Topic.RECORDS_INGESTED,
    "clean": Topic.RECORDS_CLEAN,
    "infer": Topic.PREDICTIONS,
    "fuse": Topic.PREDICTIONS_FUSED,
    "report": Topic.REPORTS,
}
SUMMARY_FILE = "AIMASS_CHAOS_SUMMARY"  # where `make chaos` collects the one-line summaries


def records_per_run() -> int:
    """Records per batch (each victim, and the fault test, has its own). Small in `make test`, 5,000 in `make chaos`."""
    return int(os.environ.get("AIMASS_CHAOS_RECORDS", "120"))


def kills_per_run() -> int:
    """How often each victim is killed while its batch streams through (evenly spaced)."""
    return int(os.environ.get("AIMASS_CHAOS_KILLS", "1"))


def drain_timeout(records: int) -> float:
    """Generous (report renders ~25 ms per record on a free core, far slower on a busy 2-core machine), and a fuse
    kill can hold a join for its 20 s emission lease."""
    return 120.0 + records * 0.25


def time_limit() -> float:
    """pytest-timeout's limit for one chaos test: the stack's start, a wait for the kills and the drain, with room."""
    return 300.0 + 2 * drain_timeout(records_per_run())


@dataclass
class Pipeline:
    stack: PrivateStack
    services: dict[str, ServiceProcess]
    models: int
    sent: set[str] = field(default_factory=set)  # every record id sent on this stack

    @property
    def settings(self) -> Settings:
        return self.stack.settings

    async def publish(self, documents: Iterable[Document]) -> None:
        """Canonical JSON documents as hospitals send them, each acknowledged by the broker (acks=all)."""
        client = await producer(self.settings)
        raw = topic_name(Topic.INGEST_RAW, self.settings.topic_prefix)
        try:
            pending = []
            for document in documents:
                self.sent.add(document.record_id)
                headers = [
                    (CE_SOURCE, document.hospital.encode()),
                    (CE_ID, document.ce_id.encode()),
                    (CONTENT_TYPE, JSON.encode()),
                ]
                pending.append(await client.send(raw, document.body, headers=headers))
                if len(pending) >= 500:
                    await asyncio.gather(*pending)
                    pending.clear()
            await asyncio.gather(*pending)
        finally:
            await client.stop()

    async def results(self) -> tuple[TopicTally, TopicTally]:
        """Tallies of ``predictions.fused`` and ``reports`` from now on."""
        return (
            await TopicTally(self.settings, Topic.PREDICTIONS_FUSED).open(),
            await TopicTally(self.settings, Topic.REPORTS).open(),
        )

    async def drain(self, expected: list[str], fused: TopicTally, reports: TopicTally, settle: float = 3.0) -> None:
        """Until every expected record has a fused result and a report; then ``settle`` s more for late repeats.
        If some never come, the failure says where in the pipeline they stopped."""
        try:
            await wait_until(
                lambda: missing(expected, fused.records, reports.records) == 0,
                drain_timeout(len(expected)),
                lambda: (
                    f"{missing(expected, fused.records, reports.records)} of {len(expected)} records "
                    f"without a fused result and a report"
                ),
                fused,
                reports,
            )
        except AssertionError as timed_out:
            absent = [r for r in expected if r not in fused.records or r not in reports.records]
            raise AssertionError(
                f"{timed_out}; on the topics from the start: {await trace(self.settings, absent)} (e.g. {absent[:3]})"
            ) from None
        await asyncio.sleep(settle)

    def outcomes(self, expected: list[str], *tallies: TopicTally) -> list[TopicAccount]:
        return [reconcile(t.name, expected, t.records, t.duplicates, self.sent) for t in tallies]

    def producer_renewals(self) -> dict[str, int]:
        """Per service, how many failed producers its producer watch replaced (``aimass_producer_renewals_total``)."""
        renewed = {}
        for name, process in self.services.items():
            text = process.get("/metrics", timeout=5).text
            count = sum(
                sample.value
                for family in text_string_to_metric_families(text)
                if family.name == "aimass_producer_renewals"
                for sample in family.samples
                if sample.name == "aimass_producer_renewals_total"
            )
            if count:
                renewed[name] = int(count)
        return renewed

    def readiness(self) -> dict[str, tuple[int, dict[str, str]]]:
        answers = {}
        for name, process in self.services.items():
            try:
                response = process.get("/readyz", timeout=5)
                answers[name] = (response.status_code, response.json().get("checks", {}))
            except httpx.HTTPError as error:
                answers[name] = (0, {"http": type(error).__name__})
        return answers

    async def wait_readiness(self, status: int, dependency: str, state: str, timeout: float = 60.0) -> None:
        """Until every service answers ``status`` with ``dependency`` reported as ``state`` and every other check ok."""

        def as_expected(code: int, checks: dict[str, str]) -> bool:
            others_ok = all(value == "ok" for name, value in checks.items() if name != dependency)
            return code == status and checks.get(dependency) == state and others_ok

        def reached() -> bool:
            return all(as_expected(code, checks) for code, checks in self.readiness().values())

        await wait_until(reached, timeout, lambda: f"readiness {status} with {dependency} {state}: {self.readiness()}")


async def wait_until(
    condition: Callable[[], bool], timeout: float, what: Callable[[], str], *tallies: TopicTally
) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        for tally in tallies:
            tally.check()
        if time.monotonic() > deadline:
            raise AssertionError(f"after {timeout:.0f} s: {what()}")
        await asyncio.sleep(0.2)


def write_summary(line: str) -> None:
    print(f"\n{line}")
    path = os.environ.get(SUMMARY_FILE)
    if path:
        with open(path, "a", encoding="utf-8") as summary:
            summary.write(line + "\n")
