"""The export directory format: one writer and one reader of ``config.json`` + ``model.safetensors``.

``vtp-export`` (a training checkpoint) and ``vtp-convert`` (an official checkpoint) both write
through :func:`write_export_dir`; :func:`~vtp_lightning.weights.pretrained.from_pretrained` reads
through :func:`read_export_config` and :func:`read_safetensors`. ``config.json`` holds:

- ``architecture``: the encode/decode architecture (``VTPAutoencoder.from_architecture``);
- ``source_checkpoint``: the file it came from;
- ``class``: the import path of the tokenizer class that wrote (or would train) it;
- anything the writer adds (``official``: the conversion report).

``model.yaml`` (optional): ``model`` and ``data`` options that rebuild the tokenizer for training.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
import yaml
from safetensors.torch import load_file, save_file

from vtp_lightning.errors import CheckpointError

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
OPTIONS_NAME = "model.yaml"


def write_export_dir(
    out_dir: str | Path,
    weights: dict[str, torch.Tensor],
    *,
    architecture: dict[str, Any],
    source: str | Path,
    tokenizer_class: str | None,
    extra: dict[str, Any] | None = None,
    options: dict[str, Any] | None = None,
    options_header: str = "",
) -> Path:
    """Write ``weights`` and their config (and, given ``options``, ``model.yaml``) into ``out_dir``."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise CheckpointError(f"{out} is a file; give a directory (new or existing) to write the model into")
    out.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.contiguous() for k, v in weights.items()}
    save_file(tensors, str(out / WEIGHTS_NAME), metadata={"format": "pt"})
    config = {"architecture": architecture, "source_checkpoint": str(source), "class": tokenizer_class}
    config.update(extra or {})
    (out / CONFIG_NAME).write_text(json.dumps(config, indent=2))
    if options is not None:
        (out / OPTIONS_NAME).write_text(options_header + yaml.safe_dump(options, sort_keys=False))
    return out


def read_export_config(directory: str | Path) -> dict[str, Any]:
    """The parsed ``config.json`` of an export directory, with an ``architecture`` mapping in it."""
    config_path = Path(directory) / CONFIG_NAME
    if not config_path.is_file():
        raise CheckpointError(
            f"{directory} has no {CONFIG_NAME}; export a checkpoint with `vtp-export` first"
        )
    try:
        config = json.loads(config_path.read_text())
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise CheckpointError(
            f"{config_path} is not a valid export config (not JSON: {exc}); "
            "export the checkpoint again with `vtp-export`"
        ) from None
    if not isinstance(config, dict) or not isinstance(config.get("architecture"), dict):
        raise CheckpointError(
            f"{config_path} is not a valid export config (no 'architecture' mapping); "
            "export the checkpoint again with `vtp-export`"
        )
    return config


def read_safetensors(path: str | Path, device: str = "cpu") -> dict[str, torch.Tensor]:
    """The tensors of a ``.safetensors`` file; one :class:`CheckpointError` when it is missing or bad."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"weights file {path} does not exist")
    try:
        return load_file(str(path), device=device)
    except Exception as exc:  # safetensors raises its own SafetensorError (and OSError) for bad files
        raise CheckpointError(
            f"cannot read weights file {path} ({str(exc).splitlines()[0]}); it is truncated or not a "
            "safetensors file — export the checkpoint again with `vtp-export`"
        ) from None
