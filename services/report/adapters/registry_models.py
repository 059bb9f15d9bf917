"""Model cards and ONNX models from the shared registry (``shared/registry.py``), read-only, sessions cached.

Every report reads the cards of its models (for their AUC): a card is parsed once and read again only when its
file changes (train rewrites a card whole when it promotes or retires the model)."""

from __future__ import annotations

import logging
from collections import OrderedDict
from pathlib import Path

import numpy as np
import onnxruntime as ort

from services.report.attribution import Scorer
from shared.registry import CARD_FILE, INPUT_NAME, MODEL_FILE, OUTPUT_NAME, model_dir, read_card
from shared.schemas.models import ModelCard, ModelRef
from shared.settings import Settings

log = logging.getLogger("aimass.report")
MAX_CARDS = 1024


class RegistryModels:
    def __init__(self, settings: Settings, max_sessions: int = 16) -> None:
        self.settings = settings
        self.max_sessions = max_sessions
        self._sessions: OrderedDict[ModelRef, ort.InferenceSession] = OrderedDict()
        self._cards: dict[ModelRef, tuple[tuple[int, int, int], ModelCard]] = {}

    def _directory(self, ref: ModelRef) -> Path:
        return model_dir(self.settings, ref.task, ref.site, ref.version)

    def card(self, ref: ModelRef) -> ModelCard | None:
        directory = self._directory(ref)
        try:
            stat = (directory / CARD_FILE).stat()
        except OSError:
            return None
        changed = (stat.st_mtime_ns, stat.st_ino, stat.st_size)
        cached = self._cards.get(ref)
        if cached is not None and cached[0] == changed:
            return cached[1]
        try:
            card = read_card(directory)
        except (ValueError, OSError):
            log.warning("unreadable model card", extra={"task": ref.task, "site": ref.site, "version": ref.version})
            return None
        if len(self._cards) >= MAX_CARDS:
            self._cards.clear()
        self._cards[ref] = (changed, card)
        return card

    def _session(self, ref: ModelRef) -> ort.InferenceSession | None:
        if ref in self._sessions:
            self._sessions.move_to_end(ref)
            return self._sessions[ref]
        path = self._directory(ref) / MODEL_FILE
        if not path.is_file():
            return None
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1  # at most a few hundred rows per Kafka batch: threads would only contend
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self._sessions[ref] = session
        while len(self._sessions) > self.max_sessions:
            self._sessions.popitem(last=False)
        return session

    def scorer(self, ref: ModelRef) -> Scorer | None:
        """The model as a function of the feature matrix; ``None`` when its file is not in this registry."""
        session = self._session(ref)
        if session is None:
            return None

        def score(x: np.ndarray) -> np.ndarray:
            [probability] = session.run([OUTPUT_NAME], {INPUT_NAME: np.asarray(x, dtype=np.float32)})
            return np.asarray(probability)

        return score
