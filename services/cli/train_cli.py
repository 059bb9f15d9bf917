"""``aimass train`` and ``aimass models``: train here (progress bar), list the registry, promote and retire.

Training runs in this process against the training store the train service materializes (or a shipped data set
with ``--from-dataset``); the registry is written under the data dir and each changed card is published on
``models.released`` so infer and fuse pick it up.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from aiokafka.errors import KafkaConnectionError
from tqdm import tqdm

from services.cli.kafka import kafka_unreachable, producer
from shared.registry import list_cards, registry_root
from shared.schemas.models import ModelCard, ModelStatus
from shared.settings import Settings
from shared.topics import Topic, cloudevent_headers, event_type, topic_name

if TYPE_CHECKING:
    from services.train.dataset import Dataset
    from shared.tasks import TaskSpec


def release_headers() -> list[tuple[str, bytes]]:
    """Headers of one status change published from here. Each change is its own event, so its ``ce_id`` is new
    every time: a rollback re-activates a version whose earlier activation consumers have already seen."""
    headers = cloudevent_headers(service="cli", type_=event_type("model", "released"), event_id=str(uuid.uuid4()))
    return [(name, value.encode()) for name, value in headers.items()]


async def publish_cards(cards: Sequence[ModelCard], settings: Settings) -> bool:
    client = producer(settings)
    try:
        await client.start()
    except KafkaConnectionError:
        print(
            kafka_unreachable(settings) + "; the registry is written but the cards were not published", file=sys.stderr
        )
        return False
    try:
        for card in cards:
            await client.send_and_wait(
                topic_name(Topic.MODELS_RELEASED, settings.topic_prefix),
                card.model_dump_json(exclude_none=True).encode(),
                key=f"{card.task}/{card.site}".encode(),
                headers=release_headers(),
            )
    finally:
        await client.stop()
    return True


def _dataset(task_name: str, source: str | None, settings: Settings) -> tuple[TaskSpec, Dataset]:
    from services.train.adapters.store import STORE_FOLDER, ParquetTrainingStore
    from services.train.dataset import Row, assemble
    from services.train.task_catalog import TaskCatalog
    from shared.tasks import feature_vector, label_of

    task = TaskCatalog(settings.tasks_dir).get(task_name)
    if task is None:
        raise SystemExit(f"aimass: no task {task_name!r} in {settings.tasks_dir} (AIMASS_TASKS_DIR)")
    if source is None:
        # Read only (data.parquet + inbox): compaction is the train service's, which may be appending right now.
        store = ParquetTrainingStore(settings.data_path / STORE_FOLDER)
        return task, store.dataset(task.name, task.feature_names)
    from services.cli.scenario.records import dataset_records

    rows = []
    for record in dataset_records(source):
        label = label_of(record, task)
        if label is not None:
            rows.append(Row(record.record_id, record.hospital, feature_vector(record, task), label))
    return task, assemble(task.feature_names, rows)


def train_sites(
    task: TaskSpec, data: Dataset, sites: Sequence[str], settings: Settings, say: Callable[[str], None] = print
) -> tuple[list[ModelCard], dict[str, str]]:
    """Train and release one model per site (``pooled`` = every site), a progress bar each; returns the changed
    cards and, per site that could not be trained, why."""
    from services.train.dataset import POOLED
    from services.train.failures import NotTrainable
    from services.train.jobs import train_and_release

    released: list[ModelCard] = []
    refused: dict[str, str] = {}
    for site in sites:
        with tqdm(total=1, desc=f"training {task.name}/{site}", unit="trial", file=sys.stderr, leave=False) as bar:

            def progress(done: int, planned: int, bar: tqdm = bar) -> None:
                bar.total = planned
                bar.update(done - bar.n)

            started = time.monotonic()
            try:
                cards = train_and_release(
                    task, data, None if site == POOLED else site, registry_root(settings), progress
                )
            except NotTrainable as why:
                refused[site] = why.reason
                continue
        card = cards[-1]
        cross = " ".join(f"{k}={v:.3f}" for k, v in card.cross_site.items())
        say(
            f"{card.task}/{card.site}/{card.version}  {time.monotonic() - started:.1f} s  "
            f"auc={card.metrics.get('auc', float('nan')):.3f}  "
            f"f1={card.metrics['f1']:.3f}  brier={card.metrics['brier']:.3f}  ece={card.metrics['ece']:.3f}  "
            f"cross-site: {cross}"
        )
        released.extend(cards)
    return released, refused


def train_command(args: argparse.Namespace, settings: Settings) -> int:
    from services.train.dataset import POOLED

    task, data = _dataset(args.task, args.from_dataset, settings)
    sites = [*data.site_names, POOLED] if args.every_site else [args.site or POOLED]
    released, refused = train_sites(task, data, sites, settings)
    for reason in refused.values():
        print(f"aimass: {reason}", file=sys.stderr)
    if refused:
        return 1
    if args.no_publish:
        return 0
    return 0 if asyncio.run(publish_cards(released, settings)) else 1


def models_table(cards: Sequence[ModelCard]) -> str:
    header = f"{'TASK':<16} {'SITE':<14} {'VERSION':<22} {'STATUS':<9} {'AUC':>6} {'F1':>6} {'BRIER':>6}  CREATED"
    lines = [header]
    for c in cards:
        auc = c.metrics.get("auc")
        lines.append(
            f"{c.task:<16} {c.site:<14} {c.version:<22} {c.status:<9} "
            f"{'' if auc is None else f'{auc:.3f}':>6} {c.metrics.get('f1', 0):>6.3f} "
            f"{c.metrics.get('brier', 0):>6.3f}  {c.created_at:%Y-%m-%d %H:%M}"
        )
    return "\n".join(lines)


def models_command(args: argparse.Namespace, settings: Settings) -> int:
    if args.action == "list":
        cards = list_cards(settings, args.task)
        print(models_table(cards) if cards else f"no models in {registry_root(settings)}")
        return 0
    from services.train.adapters.registry_writer import RegistryWriter

    if args.task is None or args.site is None or args.version is None:
        print(f"usage: aimass models {args.action} TASK SITE VERSION", file=sys.stderr)
        return 2
    status: ModelStatus = "active" if args.action == "promote" else "retired"
    try:
        changed = RegistryWriter(registry_root(settings)).set_status(args.task, args.site, args.version, status)
    except LookupError as missing:
        print(f"aimass: {missing}", file=sys.stderr)
        return 1
    for card in changed:
        print(f"{card.task}/{card.site}/{card.version}: {card.status}")
    return 0 if asyncio.run(publish_cards(changed, settings)) else 1


def add_commands(commands: argparse._SubParsersAction, settings_of: Callable[[], Settings]) -> None:
    train = commands.add_parser("train", help="train a task, per site or pooled, and release it")
    train.add_argument("task")
    where = train.add_mutually_exclusive_group()
    where.add_argument("--site", help="hospital id (default: pooled over every hospital)")
    where.add_argument("--every-site", action="store_true", help="one model per hospital, then the pooled one")
    train.add_argument(
        "--from-dataset", choices=["heart", "wdbc"], help="train on a shipped data set instead of the training store"
    )
    train.add_argument("--no-publish", action="store_true", help="write the registry only")
    train.set_defaults(func=lambda a: train_command(a, settings_of()))

    models = commands.add_parser("models", help="list the model registry; promote or retire a version")
    models.add_argument("action", nargs="?", choices=["list", "promote", "retire"], default="list")
    models.add_argument("task", nargs="?")
    models.add_argument("site", nargs="?")
    models.add_argument("version", nargs="?")
    models.set_defaults(func=lambda a: models_command(a, settings_of()))
