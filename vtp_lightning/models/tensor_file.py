"""Read a local weights file (``.safetensors`` or a ``torch.save`` file) as tensors, without pickled code."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch


def read_tensor_file(path: Path) -> Any:
    """``.safetensors`` -> dict of tensors; anything else -> ``torch.load(..., weights_only=True)``."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    return torch.load(path, map_location="cpu", weights_only=True)
