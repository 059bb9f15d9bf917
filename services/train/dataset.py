"""A task's training data as arrays, and the held-out split (pure: numpy only).

The split is decided per record, not per run: a record's place comes from a hash of the seed and its record id,
ranked within its (site, label) group. The same records always land in the same split whatever order they arrive
in, every site's held-out part has the same class balance as the site, and a model trained per site and the pooled
model are scored on exactly the same held-out records.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

POOLED = "pooled"


@dataclass(frozen=True)
class Row:
    """One labelled record of a task: what the store holds and ``feature_vector`` / ``label_of`` produce."""

    record_id: str
    site: str
    values: Sequence[float | None]
    label: float


@dataclass(frozen=True)
class Dataset:
    feature_names: tuple[str, ...]
    record_ids: np.ndarray  # str [N]
    sites: np.ndarray  # str [N]
    x: np.ndarray  # float64 [N, F], NaN = missing
    y: np.ndarray  # float64 [N], 0 or 1

    def __len__(self) -> int:
        return len(self.y)

    def take(self, index: np.ndarray) -> Dataset:
        return Dataset(self.feature_names, self.record_ids[index], self.sites[index], self.x[index], self.y[index])

    def at_site(self, site: str) -> Dataset:
        return self if site == POOLED else self.take(np.flatnonzero(self.sites == site))

    @staticmethod
    def concat(*parts: Dataset) -> Dataset:
        first = parts[0]
        return Dataset(
            first.feature_names,
            np.concatenate([p.record_ids for p in parts]),
            np.concatenate([p.sites for p in parts]),
            np.concatenate([p.x for p in parts]),
            np.concatenate([p.y for p in parts]),
        )

    @property
    def site_names(self) -> list[str]:
        return sorted(set(self.sites.tolist()))


def assemble(feature_names: Sequence[str], rows: Iterable[Row]) -> Dataset:
    """Rows sorted by record id, so the arrays (and everything trained on them) do not depend on arrival order."""
    ordered = sorted(rows, key=lambda r: r.record_id)
    width = len(feature_names)
    for row in ordered:
        if len(row.values) != width:
            raise ValueError(f"record {row.record_id}: {len(row.values)} feature values for {width} features")
    x = np.array([[np.nan if v is None else float(v) for v in r.values] for r in ordered], dtype=np.float64)
    return Dataset(
        feature_names=tuple(feature_names),
        record_ids=np.array([r.record_id for r in ordered], dtype=object),
        sites=np.array([r.site for r in ordered], dtype=object),
        x=x.reshape(len(ordered), width),
        y=np.array([1.0 if r.label > 0 else 0.0 for r in ordered], dtype=np.float64),
    )


def fingerprint(data: Dataset) -> str:
    """sha256 over record ids, sites, values and labels: the training data a card says it was trained on."""
    digest = hashlib.sha256()
    digest.update("\x1f".join(data.feature_names).encode())
    for record_id, site in zip(data.record_ids, data.sites, strict=True):
        digest.update(f"{record_id}\x1f{site}\x1e".encode())
    digest.update(np.ascontiguousarray(data.x).tobytes())
    digest.update(np.ascontiguousarray(data.y).tobytes())
    return digest.hexdigest()


def _rank_key(salt: str, record_id: str) -> bytes:
    return hashlib.sha256(f"{salt}\x1f{record_id}".encode()).digest()


def stratified_split(data: Dataset, fraction: float, salt: str) -> tuple[np.ndarray, np.ndarray]:
    """Indices (kept, held out): ``fraction`` of every (site, label) group held out, chosen by hash rank."""
    kept: list[int] = []
    held: list[int] = []
    groups: dict[tuple[str, float], list[int]] = {}
    for i, (site, label) in enumerate(zip(data.sites, data.y, strict=True)):
        groups.setdefault((site, float(label)), []).append(i)
    for members in groups.values():
        members.sort(key=lambda i: _rank_key(salt, data.record_ids[i]))
        n_held = round(len(members) * fraction)
        held.extend(members[:n_held])
        kept.extend(members[n_held:])
    return np.array(sorted(kept), dtype=np.int64), np.array(sorted(held), dtype=np.int64)


@dataclass(frozen=True)
class Splits:
    train: Dataset
    validation: Dataset
    test: Dataset


def split(data: Dataset, test_fraction: float, seed: int, validation_fraction: float = 0.2) -> Splits:
    """Test split first (held out from everything: search, early stopping, preprocessing), then validation."""
    rest, test = stratified_split(data, test_fraction, f"test/{seed}")
    remaining = data.take(rest)
    train, validation = stratified_split(remaining, validation_fraction, f"validation/{seed}")
    return Splits(remaining.take(train), remaining.take(validation), data.take(test))


def folds(data: Dataset, k: int, salt: str) -> np.ndarray:
    """The cross-validation fold (0..k-1) of every row: ranked by hash inside its (site, label) group and dealt out
    in turn, one label's groups after the other, so each fold holds its share of every class (at least one row of
    each when both have ``k``) and of every site, whatever order the records arrived in."""
    assignment = np.zeros(len(data), dtype=np.int64)
    groups: dict[tuple[float, str], list[int]] = {}
    for i, (site, label) in enumerate(zip(data.sites, data.y, strict=True)):
        groups.setdefault((float(label), site), []).append(i)
    offset = 0
    for key in sorted(groups):
        members = sorted(groups[key], key=lambda i: _rank_key(salt, data.record_ids[i]))
        for rank, i in enumerate(members):
            assignment[i] = (offset + rank) % k
        offset += len(members)  # the next group starts where this one stopped: a label's rows spread evenly
    return assignment
