"""Read a local weights file (``.safetensors`` or a ``torch.save`` file) as tensors, without pickled code."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vtp_lightning.errors import WeightsError
from vtp_lightning.weights.checkpoint_file import load_checkpoint


def read_tensor_file(path: Path) -> Any:
    """``.safetensors`` -> dict of tensors; anything else -> a weights-only ``torch.load`` (one
    :class:`~vtp_lightning.errors.VTPError` for a missing, truncated or pickled-code file)."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except Exception as exc:  # safetensors raises its own SafetensorError for bad files
            raise WeightsError(f"cannot read weights file {path} ({str(exc).splitlines()[0]})") from None
    return load_checkpoint(path, what="weights file")
