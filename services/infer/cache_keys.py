"""Prediction cache keys (pure): one per (model version, feature vector).

The vector is hashed as the float32 bytes the model reads, so the key depends on exactly what was scored (NaN
included) and never carries a value in clear.
"""

from __future__ import annotations

import hashlib

import numpy as np

from shared.redis import redis_key
from shared.schemas.models import ModelCard

DIGEST_BYTES = 16


def model_prefix(card: ModelCard) -> str:
    # The model in braces is a Redis Cluster hash tag: one model's keys share a slot, so one MGET and one
    # write script per model stay valid on a cluster too.
    return redis_key("infer", "prediction", "{" + f"{card.task}:{card.site}:{card.version}" + "}", "")


def row_digests(matrix: np.ndarray) -> list[str]:
    rows = np.ascontiguousarray(matrix, dtype=np.float32)
    return [hashlib.blake2b(row.tobytes(), digest_size=DIGEST_BYTES).hexdigest() for row in rows]


def cache_keys(card: ModelCard, digests: list[str]) -> list[str]:
    prefix = model_prefix(card)
    return [prefix + digest for digest in digests]


def encode_probability(probability: float) -> bytes:
    return repr(float(probability)).encode()


def decode_probability(value: bytes | None) -> float | None:
    """``None`` for a miss or a value this version cannot read (treated as a miss, never as an error)."""
    if value is None:
        return None
    try:
        probability = float(value)
    except ValueError:
        return None
    return probability if 0.0 <= probability <= 1.0 else None
