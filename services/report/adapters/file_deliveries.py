"""Pending rest-hook deliveries on disk under ``<data dir>/deliveries``: the due-set every report replica sweeps.

One file per pending delivery, named so a sweep lists the due ones without reading any:

- ``due/<due ms>~<first ms>~<subscription>~<report>.json``: waiting for its next try at ``due``; ``first`` is when it
  became due the first time (the retry budget counts from there);
- ``claimed/<lease end ms>~<first ms>~<subscription>~<report>.json``: a replica is trying it now.

A replica claims a delivery by renaming it from ``due/`` to ``claimed/`` -- atomic, so of two replicas sweeping the
shared volume exactly one gets it -- and, after the try, removes it (delivered, dead-lettered) or writes it back to
``due/`` with its next time. A claim whose lease ran out (the replica died mid-try) is renamed back to ``due/`` by
whichever replica sees it first: the delivery is tried again, at least once in all.

Files, rather than Redis: the deliveries must outlive a restart of anything (the local Redis keeps nothing on disk,
the report volume keeps the reports already), and report's Redis user has no keys by design (docs/security.md).
"""

from __future__ import annotations

import os
from pathlib import Path

from services.report.adapters.file_store import safe
from services.report.ports import Claimed, DueEntry
from services.report.subscriptions import PendingDelivery
from shared.files import write_atomically
from shared.settings import Settings

SEPARATOR = "~"


def _ms(seconds: float) -> str:
    return f"{int(seconds * 1000):013d}"


def _name(due_at: float, first_at: float, subscription_id: str, report_id: str) -> str:
    return SEPARATOR.join((_ms(due_at), _ms(first_at), subscription_id, report_id)) + ".json"


def file_name(delivery: PendingDelivery) -> str:
    return _name(delivery.due_at, delivery.first_at, delivery.subscription_id, delivery.report_id)


def _parse(name: str) -> DueEntry | None:
    stem, _, ext = name.rpartition(".")
    parts = stem.split(SEPARATOR)
    if ext != "json" or len(parts) != 4 or not parts[0].isdigit() or not parts[1].isdigit():
        return None  # a temporary file of write_atomically, or something that is not ours
    return DueEntry(name, int(parts[0]) / 1000, int(parts[1]) / 1000, parts[2], parts[3])


class FileDeliveryQueue:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.due_dir = root / "due"
        self.claimed_dir = root / "claimed"
        for folder in (self.due_dir, self.claimed_dir):
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)

    @classmethod
    def under(cls, settings: Settings) -> FileDeliveryQueue:
        return cls(settings.data_path / "deliveries")

    def schedule(self, deliveries: list[PendingDelivery]) -> None:
        """Durably: once this returns, every delivery is on disk (the consumed batch may be committed)."""
        for delivery in deliveries:
            if not (safe(delivery.subscription_id) and safe(delivery.report_id)):
                raise ValueError("subscription and report ids must be plain names")
        _write_durably(self.due_dir, [(file_name(d), d.model_dump_json().encode()) for d in deliveries])

    def due(self, now: float) -> list[DueEntry]:
        """Every delivery due at ``now``, earliest first."""
        entries = [e for e in map(_parse, _names(self.due_dir)) if e is not None and e.due_at <= now]
        return sorted(entries, key=lambda e: (e.due_at, e.name))

    def claim(self, entry: DueEntry, lease_until: float) -> Claimed | None:
        """The delivery, claimed by this process until ``lease_until``; ``None`` when another got it first."""
        target = self.claimed_dir / _name(lease_until, entry.first_at, entry.subscription_id, entry.report_id)
        try:
            os.rename(self.due_dir / entry.name, target)
        except FileNotFoundError:
            return None
        return Claimed(target, PendingDelivery.model_validate_json(target.read_bytes()))

    def done(self, claimed: Claimed) -> None:
        """Delivered or dead-lettered: gone. (A lease that ran out may have handed it on already: then nothing.)"""
        Path(claimed.token).unlink(missing_ok=True)

    def retry(self, claimed: Claimed, delivery: PendingDelivery) -> None:
        """Back to ``due/`` with its next time, then the claim released."""
        _write_durably(self.due_dir, [(file_name(delivery), delivery.model_dump_json().encode())])
        Path(claimed.token).unlink(missing_ok=True)

    def release_expired(self, now: float) -> int:
        """Claims whose lease ended (their replica died mid-try) made due again now; how many."""
        released = 0
        for entry in map(_parse, _names(self.claimed_dir)):
            if entry is None or entry.due_at > now:
                continue
            try:
                os.rename(
                    self.claimed_dir / entry.name,
                    self.due_dir / _name(now, entry.first_at, entry.subscription_id, entry.report_id),
                )
                released += 1
            except FileNotFoundError:  # another replica released it, or its owner finished
                continue
        return released

    def pending(self) -> int:
        """Deliveries not done yet: waiting and being tried."""
        return sum(1 for d in (self.due_dir, self.claimed_dir) for n in _names(d) if _parse(n) is not None)


def _names(folder: Path) -> list[str]:
    try:
        return [entry.name for entry in os.scandir(folder)]
    except FileNotFoundError:
        return []


def _write_durably(folder: Path, files: list[tuple[str, bytes]]) -> None:
    """``write_atomically`` each, each file's data flushed, then the folder's entries once: a commit of the consumed
    offsets follows, and a power loss must not lose a delivery the broker no longer holds for us."""
    if not files:
        return
    for name, data in files:
        write_atomically(folder / name, data)
        _fsync(folder / name)
    _fsync(folder)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
