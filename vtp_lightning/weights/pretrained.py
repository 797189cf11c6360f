"""Tokenizer weights wherever they come from, and the encode/decode model rebuilt from them.

- :func:`read_weights`: the tensors of a Lightning ``.ckpt``, a ``.safetensors`` file, an export
  directory or an official VTP checkpoint (``init_weights``);
- :func:`load_autoencoder` / :func:`from_pretrained`: a :class:`VTPAutoencoder` from a training
  checkpoint, an export directory or an official one (stage 2, the protocol evaluation, users);
- :func:`export_pretrained`: a training checkpoint written as an export directory (``vtp-export``).

>>> ae = from_pretrained("exported/vtp-tiny"); z = ae.encode(images); x = ae.decode(z)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from vtp_lightning.errors import CheckpointError
from vtp_lightning.models.autoencoder import VTPAutoencoder
from vtp_lightning.official.loading import official_autoencoder, official_weights
from vtp_lightning.official.source import is_official
from vtp_lightning.weights.checkpoint_file import load_checkpoint
from vtp_lightning.weights.consistency import build_checked
from vtp_lightning.weights.export_dir import (
    CONFIG_NAME,
    WEIGHTS_NAME,
    read_export_config,
    read_safetensors,
    write_export_dir,
)
from vtp_lightning.weights.provenance import ARCH_KEY, CLASS_KEY
from vtp_lightning.weights.sharded_checkpoint import is_sharded_checkpoint, read_sharded_checkpoint


def _load_checkpoint(path: Path) -> dict[str, Any]:
    """A training checkpoint with a ``state_dict``, read without unpickling arbitrary objects (a
    sharded checkpoint folder: checked, then consolidated)."""
    state = read_sharded_checkpoint(path) if is_sharded_checkpoint(path) else load_checkpoint(path)
    if not isinstance(state.get("state_dict"), dict):
        raise CheckpointError(
            f"{path} has no 'state_dict'; give a Lightning checkpoint written by `lightning fit` "
            "or an exported directory"
        )
    return state


def read_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of a Lightning ``.ckpt``, a ``.safetensors`` file, or an exported directory."""
    path = Path(path)
    if is_official(path):  # a released VTP directory or its model.safetensors: converted on the fly
        return official_weights(path)
    if is_sharded_checkpoint(path):
        return _load_checkpoint(path)["state_dict"]
    if path.is_dir():
        path = path / WEIGHTS_NAME
    if path.suffix == ".safetensors":
        return read_safetensors(path)
    try:
        return _load_checkpoint(path)["state_dict"]
    except CheckpointError as not_lightning:
        try:  # an official training state dict (vtp.models.vtp.VTP) has no 'state_dict' entry
            return official_weights(path)
        except CheckpointError:
            raise not_lightning from None


def export_pretrained(checkpoint: str | Path, out_dir: str | Path) -> Path:
    """Write the encode/decode weights and architecture of a training checkpoint to ``out_dir``."""
    checkpoint = Path(checkpoint)
    state = _load_checkpoint(checkpoint)
    arch = state.get(ARCH_KEY)
    if arch is None:
        raise CheckpointError(
            f"{checkpoint} was not written by a vtp-lightning tokenizer (no {ARCH_KEY!r} entry)"
        )
    model = build_checked(arch, state["state_dict"], f"{checkpoint}'s recorded architecture", str(checkpoint))
    weights = {k: state["state_dict"][k] for k in model.state_dict()}
    return write_export_dir(
        out_dir, weights, architecture=arch, source=checkpoint, tokenizer_class=state.get(CLASS_KEY)
    )


def from_pretrained(directory: str | Path, map_location: str | torch.device = "cpu") -> VTPAutoencoder:
    """Rebuild a :class:`VTPAutoencoder` from an exported directory or an official VTP one (eval mode)."""
    directory = Path(directory)
    if is_official(directory):
        return official_autoencoder(directory, map_location)
    arch = read_export_config(directory)["architecture"]
    weights = read_safetensors(directory / WEIGHTS_NAME)
    model = build_checked(arch, weights, str(directory / CONFIG_NAME), str(directory / WEIGHTS_NAME))
    return model.to(map_location).eval()


def load_autoencoder(path: str | Path) -> VTPAutoencoder:
    """The encode/decode half of a tokenizer from a training checkpoint or an exported directory."""
    path = Path(path)
    if path.is_dir() or is_official(path):
        return from_pretrained(path) if path.is_dir() else official_autoencoder(path)
    state = _load_checkpoint(path)
    arch = state.get(ARCH_KEY)
    if arch is None or "state_dict" not in state:
        raise CheckpointError(
            f"{path} was not written by a vtp-lightning tokenizer (no {ARCH_KEY!r} entry); give a "
            "checkpoint from `lightning fit` or a directory from `vtp-export`"
        )
    return build_checked(arch, state["state_dict"], f"{path}'s recorded architecture", str(path))
