"""Find and read an official VTP checkpoint, and tell which of the two official layouts it is in.

- ``hf``: the released ``VTPModel`` (``vtp.models.vtp_hf``): a directory with ``config.json``
  (``"model_type": "vtp"``) and ``model.safetensors``; encoder ``trunk.*``, ``pixel_decoder.*``,
  ``text_transformer.*``, ``visual_proj``, ``logit_scale``.
- ``train``: the training class ``vtp.models.vtp.VTP``'s state dict (``torch.save``): the same encoder
  and decoder, the text tower as ``transformer.*``, the CLIP projection as ``proj``, plus
  ``dino_head.*`` and the EMA teacher ``teacher_trunk.*``, ``teacher_proj``, ``teacher_dino_head.*``.

Tensors are read with safetensors or ``torch.load(weights_only=True)`` only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from vtp_lightning.errors import CheckpointError
from vtp_lightning.weights.checkpoint_file import load_checkpoint

HF_WEIGHTS = "model.safetensors"
HF_CONFIG = "config.json"
# Wrappers a training script may have put around the state dict, and prefixes DDP / torch.compile add.
_WRAPPER_KEYS = ("model", "state_dict", "module")
_KEY_PREFIXES = ("module.", "_orig_mod.")


@dataclass(frozen=True)
class OfficialCheckpoint:
    """The tensors of an official checkpoint, its layout and (released layout) its ``VTPConfig``."""

    path: Path
    layout: Literal["hf", "train"]
    tensors: dict[str, torch.Tensor]
    config: dict[str, Any] | None


def _official_config(path: Path) -> dict[str, Any] | None:
    """The ``VTPConfig`` dict of a ``config.json`` written by the official ``save_pretrained``, else None."""
    if not path.is_file():
        return None
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return config if isinstance(config, dict) and config.get("model_type") == "vtp" else None


def is_official(path: str | Path) -> bool:
    """Whether ``path`` looks like an official checkpoint (cheap: config or tensor names, no weights read)."""
    path = Path(path)
    if path.is_dir():
        return _official_config(path / HF_CONFIG) is not None
    if path.suffix == ".safetensors" and path.is_file():
        if _official_config(path.parent / HF_CONFIG) is not None:
            return True
        try:
            from safetensors import safe_open

            with safe_open(str(path), framework="pt") as handle:
                return any(k.startswith("trunk.") for k in handle.keys())  # noqa: SIM118 (safe_open has no __iter__)
        except Exception:  # not a readable safetensors file: not ours to judge here
            return False
    return False


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except Exception as exc:  # safetensors' own error type for truncated or foreign files
        raise CheckpointError(
            f"cannot read {path} ({str(exc).splitlines()[0]}); it is truncated or not a safetensors file — "
            "download the official checkpoint again"
        ) from None


def _unwrap(state: dict[str, Any], path: Path) -> dict[str, torch.Tensor]:
    for key in _WRAPPER_KEYS:
        if isinstance(state.get(key), dict) and not any(isinstance(v, torch.Tensor) for v in state.values()):
            state = state[key]
            break
    tensors = {}
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(
                f"{path} is not an official VTP state dict: entry {key!r} is a {type(value).__name__}, "
                "not a tensor; give the file written by torch.save(model.state_dict())"
            )
        for prefix in _KEY_PREFIXES:
            key = key.removeprefix(prefix)
        tensors[key] = value
    return tensors


def read_official(path: str | Path) -> OfficialCheckpoint:
    """Read an official checkpoint: a released directory, its ``model.safetensors``, or a training file."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"official checkpoint {path} does not exist; check the path")
    config = None
    if path.is_dir():
        config = _official_config(path / HF_CONFIG)
        if config is None:
            raise CheckpointError(
                f'{path} has no official {HF_CONFIG} (with "model_type": "vtp"); give the directory '
                "of a released VTP model (config.json + model.safetensors)"
            )
        if not (path / HF_WEIGHTS).is_file():
            raise CheckpointError(f"{path} has no {HF_WEIGHTS}; download the released weights file too")
        tensors = _read_safetensors(path / HF_WEIGHTS)
    elif path.suffix == ".safetensors":
        config = _official_config(path.parent / HF_CONFIG)
        tensors = _read_safetensors(path)
    else:
        tensors = _unwrap(load_checkpoint(path, what="official VTP checkpoint"), path)
    if not any(k.startswith("trunk.") for k in tensors):
        sample = ", ".join(sorted(tensors)[:3]) or "no tensors"
        raise CheckpointError(
            f"{path} is not an official VTP checkpoint: it has no 'trunk.*' encoder tensors (it has {sample}); "
            "give a released VTP directory or a vtp.models.vtp.VTP state dict"
        )
    training_only = ("dino_head.", "teacher_trunk.", "transformer.", "proj.weight")
    layout = "train" if any(k.startswith(training_only) for k in tensors) else "hf"
    return OfficialCheckpoint(path, layout, tensors, config)
