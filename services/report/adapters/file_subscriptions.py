"""Rest-hook subscriptions on disk under ``<data dir>/subscriptions``, beside the reports every replica shares.

``<hospital>/<id>.json`` the subscription (its channel headers are the EHR's secrets: the files are mode 600, the
folders 700, on the report volume only), ``<hospital>/<id>.events`` the number of notifications made for it so far
(the backport's event number), counted under a file lock so replicas sharing the volume never hand out one twice.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from services.report.adapters.file_store import safe
from services.report.subscriptions import StoredSubscription
from shared.files import write_atomically
from shared.settings import Settings


class FileSubscriptionStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._cache: dict[str, tuple[int, list[StoredSubscription]]] = {}

    @classmethod
    def under(cls, settings: Settings) -> FileSubscriptionStore:
        return cls(settings.data_path / "subscriptions")

    def _folder(self, hospital: str) -> Path:
        if not safe(hospital):
            raise ValueError("a hospital id is a plain name")
        return self.root / hospital

    def save(self, subscription: StoredSubscription) -> None:
        folder = self._folder(subscription.hospital)
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_atomically(folder / f"{subscription.id}.json", subscription.model_dump_json().encode())  # mode 600

    def get(self, hospital: str, subscription_id: str) -> StoredSubscription | None:
        if not safe(subscription_id):
            return None
        path = self._folder(hospital) / f"{subscription_id}.json"
        try:
            return StoredSubscription.model_validate_json(path.read_bytes())
        except FileNotFoundError:
            return None

    def of_hospital(self, hospital: str) -> list[StoredSubscription]:
        """The hospital's subscriptions, oldest first; read again only when the folder changed."""
        folder = self._folder(hospital)
        try:
            changed = folder.stat().st_mtime_ns
        except FileNotFoundError:
            return []
        cached = self._cache.get(hospital)
        if cached is not None and cached[0] == changed:
            return cached[1]
        found = []
        for path in folder.glob("*.json"):
            try:
                found.append(StoredSubscription.model_validate_json(path.read_bytes()))
            except FileNotFoundError:  # deleted while listed
                continue
        found.sort(key=lambda s: (s.created_at, s.id))
        self._cache[hospital] = (changed, found)
        return found

    def delete(self, hospital: str, subscription_id: str) -> bool:
        if not safe(subscription_id):
            return False
        folder = self._folder(hospital)
        (folder / f"{subscription_id}.events").unlink(missing_ok=True)
        try:
            (folder / f"{subscription_id}.json").unlink()
        except FileNotFoundError:
            return False
        return True

    def next_event(self, hospital: str, subscription_id: str) -> int:
        """The next event number of the subscription: 1, 2, 3, ..."""
        path = self._folder(hospital) / f"{subscription_id}.events"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            text = os.read(fd, 64).decode().strip()
            number = int(text or 0) + 1
            os.lseek(fd, 0, os.SEEK_SET)
            os.ftruncate(fd, 0)
            os.write(fd, str(number).encode())
            os.fsync(fd)
            return number
        finally:
            os.close(fd)  # releases the lock

    def set_status(self, hospital: str, subscription_id: str, status: str, error: str | None) -> None:
        """Record how the latest delivery went (``error`` with the reason after a dead letter); a subscription deleted
        meanwhile stays deleted."""
        current = self.get(hospital, subscription_id)
        if current is None or (current.status, current.error) == (status, error):
            return
        self.save(current.model_copy(update={"status": status, "error": error}))
