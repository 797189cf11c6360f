"""User-facing errors.

Every problem a user can fix (a bad path, a corrupt image, a weights file with the wrong hash, a
checkpoint from another model) raises a subclass of :class:`VTPError` whose message names what is
wrong and how to fix it. The CLI prints that one message instead of a stack trace.
"""

from __future__ import annotations


class VTPError(Exception):
    """Base class of errors a user can act on."""


class DataError(VTPError):
    """A dataset, file or sample cannot be read or is malformed; ``where`` names the file if known."""

    def __init__(self, message: str, where: str | None = None) -> None:
        super().__init__(message)
        self.where = where


class ConfigError(VTPError):
    """A configuration value is missing, unknown or inconsistent."""


class WeightsError(VTPError):
    """A pretrained weights file is missing, has the wrong hash or the wrong keys."""


class CheckpointError(VTPError):
    """A checkpoint does not fit the model it is loaded into."""


class NonFiniteError(VTPError):
    """A loss, a weight or a feature became NaN or infinite (a diverged run)."""
