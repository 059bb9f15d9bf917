"""Why a training ends without a release (no heavy imports: the service loads this without torch)."""

from __future__ import annotations

from shared.errors import RejectedInput


class NotTrainable(RejectedInput):
    """The store cannot support this training (too few rows, one class only, unknown site or task)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason, "not_trainable")


class ParityError(Exception):
    """The exported graph does not reproduce the torch model: nothing may be released."""


class TrainerDied(Exception):
    """The training process died (killed for memory, a crash in a native library) on a fresh start as well."""
