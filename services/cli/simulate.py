"""``aimass simulate``: four real hospitals publish their patients; the platform trains, scores, fuses, reports.

1. Training patients (four formats), pydicom's CT and MR files and a few broken messages go to ``ingest.raw``;
   the run waits until clean has every record and every broken message has its dead letter.
2. One model per hospital on that hospital's records and a pooled one, trained from the records as they came out
   of clean (train's own code, in this process), released on ``models.released``; the run waits until infer and
   fuse serve them.
3. The held-out patients go in; every model scores them, fuse combines, report writes; the run waits for every
   report and prints the summary.
4. Each front door is used once (``services/cli/doors.py``): MLLP, FHIR REST, synchronous predict, rest-hook
   subscriptions, CDS Hooks.

Every message gets a fresh ``ce_id`` and ingest's audit event names the records each became, so the run counts
exactly its own results, whatever else is on the topics.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError
from tqdm import tqdm

from services.cli.doors import DoorFailed, DoorsSeen, use_doors
from services.cli.kafka import kafka_unreachable, producer
from services.cli.scenario import plan, summary
from services.cli.scenario.heart import records_by_hospital
from services.cli.scenario.observed import FOLLOWED, Observed
from services.cli.token import TokenError, links_for, ops_token, patient_link_for
from services.cli.train_cli import publish_cards, train_sites
from shared.broker import MAX_MESSAGE_BYTES
from shared.schemas.models import ModelCard
from shared.security import kafka_client_options
from shared.settings import Settings
from shared.submissions import SUBMITTED as SUBMITTED_TYPE
from shared.topics import CE_ID, CE_SOURCE, CE_SPECVERSION, CE_TYPE, CONTENT_TYPE, Topic, decode_headers, topic_name

TASK = "heart_disease"
SUBMITTED = SUBMITTED_TYPE.encode()


class Unfinished(Exception):
    """A phase did not complete in time; the message says which service to look at."""


def dicom_samples() -> dict[str, bytes]:
    from pydicom.data import get_testdata_file

    return {name: Path(str(get_testdata_file(name))).read_bytes() for name in plan.DICOM_FILES}


async def _at_end(settings: Settings, *topics: Topic) -> AIOKafkaConsumer:
    """A consumer of ``topics`` positioned at their current end, so it sees only what comes after."""
    names = [topic_name(t, settings.topic_prefix) for t in topics]
    consumer = AIOKafkaConsumer(
        *names,
        **kafka_client_options(settings),
        enable_auto_commit=False,
        auto_offset_reset="latest",
        max_partition_fetch_bytes=MAX_MESSAGE_BYTES,
    )
    await consumer.start()
    while not consumer.assignment():  # the first poll joins and assigns; records it returns predate this run
        await consumer.getmany(timeout_ms=100)
    for partition in consumer.assignment():
        await consumer.position(partition)  # fixes the starting offset before anything is published
    return consumer


async def _follow(watcher: AIOKafkaConsumer, outcome: Observed, settings: Settings) -> None:
    topics = {topic_name(t, settings.topic_prefix): t for t in FOLLOWED}
    while True:
        for partition, records in (await watcher.getmany(timeout_ms=200)).items():
            for record in records:
                outcome.observe(
                    topics[partition.topic], decode_headers(record.headers), record.value or b"", record.timestamp
                )


async def _publish(
    client: AIOKafkaProducer, settings: Settings, messages: list[plan.Message], outcome: Observed, description: str
) -> None:
    raw = topic_name(Topic.INGEST_RAW, settings.topic_prefix)
    with tqdm(total=len(messages), desc=description, unit="msg", disable=None, leave=False) as bar:
        for message in messages:
            headers = [
                (CE_SPECVERSION, b"1.0"),
                (CE_ID, message.ce_id.encode()),
                (CE_SOURCE, message.hospital.encode()),
                (CE_TYPE, SUBMITTED),
                (CONTENT_TYPE, message.content_type.encode()),
            ]
            outcome.sent_at[message.ce_id] = time.time()
            await client.send(raw, message.body, headers=headers)
            bar.update()
        await client.flush()


async def _until(
    done: Callable[[], int],
    total: int,
    description: str,
    seconds: float,
    problem: str,
    detail: Callable[[], str] | None = None,
) -> None:
    deadline = time.monotonic() + seconds
    with tqdm(total=total, desc=description, unit="rec", disable=None, leave=False) as bar:
        while (count := done()) < total:
            bar.update(count - bar.n)
            if time.monotonic() > deadline:
                where = f": {detail()}" if detail else ""
                raise Unfinished(f"{count} of {total} {problem} after {seconds:.0f} s{where}")
            await asyncio.sleep(0.2)
        bar.update(total - bar.n)


def _ready_detail(settings: Settings, service: str, detail: str, token: str) -> dict[str, Any]:
    """A detail of the service's ``/readyz``, which an operator's token (``ops/metrics.read``) sees."""
    request = urllib.request.Request(
        f"{settings.public_url(service)}/readyz", headers={"authorization": f"Bearer {token}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=3) as response:
            body = json.loads(response.read())
    except OSError:
        return {}
    return body.get(detail) or {}


async def _serving(settings: Settings, cards: list[ModelCard], seconds: float) -> set[tuple[str, str]]:
    """Wait until infer and fuse both serve every released version; then infer's active (site, version)s."""
    wanted = {f"{c.site}/{c.version}" for c in cards if c.status == "active" and c.task == TASK}
    deadline = time.monotonic() + seconds
    try:
        token = await asyncio.to_thread(ops_token, settings)
    except TokenError as failed:
        raise Unfinished(f"no operator token to ask infer and fuse what they serve: {failed}") from None
    while True:
        infer = set((await asyncio.to_thread(_ready_detail, settings, "infer", "models", token)).get(TASK, []))
        fuse = set((await asyncio.to_thread(_ready_detail, settings, "fuse", "expected_models", token)).get(TASK, []))
        fuse = {ref.split("/", 1)[1] if ref.startswith(f"{TASK}/") else ref for ref in fuse}
        if wanted <= infer and wanted <= fuse:
            return {tuple(ref.split("/", 1)) for ref in infer}  # type: ignore[misc]
        if time.monotonic() > deadline:
            lagging = [name for name, serves in (("infer", infer), ("fuse", fuse)) if not wanted <= serves]
            raise Unfinished(
                f"{' and '.join(lagging)} did not load the new models in {seconds:.0f} s "
                f"(see {settings.public_url(lagging[0])}/readyz and var/log/{lagging[0]}.log)"
            )
        await asyncio.sleep(0.3)


def _train(outcome: Observed, settings: Settings) -> tuple[list[ModelCard], dict[str, str]]:
    from services.train.dataset import POOLED, Row, assemble
    from services.train.task_catalog import TaskCatalog

    task = TaskCatalog(settings.tasks_dir).get(TASK)
    if task is None:
        raise Unfinished(f"no task file for {TASK} in {settings.tasks_dir} (AIMASS_TASKS_DIR)")
    rows = [
        Row(r.record_id, r.hospital, list(f.values), f.label)
        for r in outcome.training_records()
        if (f := r.features.get(TASK)) is not None and f.label is not None
    ]
    data = assemble(task.feature_names, rows)
    return train_sites(task, data, [*data.site_names, POOLED], settings, say=tqdm.write)


@dataclass
class Run:
    """What one play of the scenario produced; ``problem`` says what did not finish, if anything."""

    outcome: Observed
    cards: list[ModelCard] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)
    timings: dict[str, float] = field(
        default_factory=lambda: dict.fromkeys(("training_phase", "training_models", "held_out_phase"), 0.0)
    )
    doors: DoorsSeen | None = None
    problem: str = ""


async def play(settings: Settings, per_hospital: int | None, wait_seconds: float) -> Run | None:
    """The whole scenario against the running platform; ``None`` when Kafka cannot be reached."""
    # Encounters dated from now: a second run is new clinical data, not a duplicate clean would rightly drop.
    documents = records_by_hospital(per_hospital, start=datetime.now(UTC).replace(microsecond=0), spread=True)
    scenario = plan.build(documents, dicom_samples())
    run = Run(Observed(scenario, TASK))
    outcome = run.outcome
    client = producer(settings)
    try:
        await client.start()
        watcher = await _at_end(settings, *FOLLOWED)
    except KafkaConnectionError:
        print(kafka_unreachable(settings), file=sys.stderr)
        return None
    follower = asyncio.create_task(_follow(watcher, outcome, settings))
    try:
        phase = time.monotonic()
        first = [*scenario.training, *scenario.imaging, *scenario.broken]
        await _publish(client, settings, first, outcome, "hospitals sending")
        await _until(
            lambda: outcome.audited(first),
            len(first),
            "ingest",
            wait_seconds,
            "messages audited by ingest (var/log/ingest.log)",
        )
        await _until(
            lambda: outcome.cleaned("training"),
            len(outcome.records_of("training")),
            "clean",
            wait_seconds,
            "training records through clean (var/log/clean.log)",
        )
        await _until(
            outcome.broken_answered,
            len(scenario.broken),
            "dead letters",
            wait_seconds,
            "broken messages dead-lettered (var/log/ingest.log)",
        )
        run.timings["training_phase"] = time.monotonic() - phase

        phase = time.monotonic()
        run.cards, run.refused = await asyncio.to_thread(_train, outcome, settings)
        run.timings["training_models"] = time.monotonic() - phase
        if not await publish_cards(run.cards, settings):
            raise Unfinished("the model cards could not be published on models.released")
        outcome.released_versions = await _serving(settings, run.cards, wait_seconds)

        phase = time.monotonic()
        await _publish(client, settings, scenario.held_out, outcome, "held-out patients")
        await _until(
            lambda: outcome.audited(scenario.held_out),
            len(scenario.held_out),
            "ingest",
            wait_seconds,
            "held-out messages audited by ingest (var/log/ingest.log)",
        )
        await _until(
            lambda: outcome.cleaned("held-out"),
            len(outcome.records_of("held-out")),
            "clean",
            wait_seconds,
            "held-out records through clean (var/log/clean.log)",
        )
        await _until(
            outcome.reported,
            len(outcome.scored()),
            "scored, fused, reported",
            wait_seconds,
            "held-out records reported (var/log/infer.log, fuse.log, report.log)",
            outcome.stages,
        )
        run.timings["held_out_phase"] = time.monotonic() - phase
        token = await asyncio.to_thread(ops_token, settings)
        ports = await asyncio.to_thread(_ready_detail, settings, "ingest", "mllp_ports", token)
        run.doors = await use_doors(settings, {h: int(p) for h, p in ports.items()}, wait_seconds)
    except DoorFailed as failed:
        run.problem = f"a front door: {failed}"
    except Unfinished as unfinished:
        run.problem = str(unfinished)
    finally:
        follower.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await follower
        await client.stop()
        await watcher.stop()
    return run


async def simulate(settings: Settings, per_hospital: int | None, wait_seconds: float) -> int:
    started = time.monotonic()
    run = await play(settings, per_hospital, wait_seconds)
    if run is None:
        return 1
    timings = summary.Timings(time.monotonic() - started, **run.timings)
    shown = [(r.report_id, run.outcome.hospital_of(r)) for r in run.outcome.own_reports()[: summary.REPORT_LINKS]]
    links = await asyncio.to_thread(links_for, settings, shown)
    timeline = None
    if shown:
        first = run.outcome.own_reports()[0]
        with contextlib.suppress(TokenError):
            timeline = await asyncio.to_thread(patient_link_for, settings, first.patient, shown[0][1])
    print(
        summary.render(
            run.outcome,
            run.cards,
            run.refused,
            timings,
            settings.public_url("report"),
            settings.public_url("infer"),
            links,
            timeline,
        )
    )
    if run.doors is not None:
        print(run.doors.render())
    if run.problem:
        print(
            f"aimass simulate: not finished: {run.problem}; `make status` and `make logs` show what each service "
            "is doing",
            file=sys.stderr,
        )
        return 1
    return 0
