"""Export a trained tokenizer to ``model.safetensors`` + ``config.json``, and load it back.

vtp-export runs/x/checkpoints/last.ckpt exported/vtp-tiny
>>> from vtp_lightning.export import from_pretrained
>>> ae = from_pretrained("exported/vtp-tiny"); z = ae.encode(images); x = ae.decode(z)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from vtp_lightning.checkpoints import ARCH_KEY, CLASS_KEY, load_checkpoint
from vtp_lightning.errors import CheckpointError, VTPError
from vtp_lightning.models.autoencoder import VTPAutoencoder
from vtp_lightning.official.loading import official_autoencoder, official_weights
from vtp_lightning.official.source import is_official

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"


def _load_checkpoint(path: Path) -> dict[str, Any]:
    """A training checkpoint with a ``state_dict``, read without unpickling arbitrary objects."""
    state = load_checkpoint(path)
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
    if path.is_dir():
        path = path / WEIGHTS_NAME
    if path.suffix == ".safetensors":
        return _read_safetensors(path)
    try:
        return _load_checkpoint(path)["state_dict"]
    except CheckpointError as not_lightning:
        try:  # an official training state dict (vtp.models.vtp.VTP) has no 'state_dict' entry
            return official_weights(path)
        except CheckpointError:
            raise not_lightning from None


def _read_safetensors(path: Path, device: str = "cpu") -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise CheckpointError(f"weights file {path} does not exist")
    try:
        return load_file(str(path), device=device)
    except Exception as exc:  # safetensors raises its own SafetensorError (and OSError) for bad files
        raise CheckpointError(
            f"cannot read weights file {path} ({str(exc).splitlines()[0]}); it is truncated or not a "
            "safetensors file — export the checkpoint again with `vtp-export`"
        ) from None


def _refuse_non_finite(weights: dict[str, torch.Tensor], source: Path) -> None:
    """Weights holding NaN or infinity come from a diverged run; exporting them would hide that."""
    bad = [k for k, v in weights.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise CheckpointError(
            f"{source} holds non-finite weights ({len(bad)} tensors, e.g. {bad[0]}): the run diverged; "
            "export an earlier checkpoint or retrain with a lower learning rate"
        )


def export_pretrained(checkpoint: str | Path, out_dir: str | Path) -> Path:
    """Write the encode/decode weights and architecture of a training checkpoint to ``out_dir``."""
    checkpoint = Path(checkpoint)
    state = _load_checkpoint(checkpoint)
    arch = state.get(ARCH_KEY)
    if arch is None:
        raise CheckpointError(
            f"{checkpoint} was not written by a vtp-lightning tokenizer (no {ARCH_KEY!r} entry)"
        )
    model = VTPAutoencoder.from_architecture(arch)
    weights = {k: v.contiguous() for k, v in model.own_weights(state["state_dict"]).items()}
    _check_fits(model, weights, checkpoint)
    _refuse_non_finite(weights, checkpoint)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise CheckpointError(f"{out} is a file; give a directory (new or existing) to export into")
    out.mkdir(parents=True, exist_ok=True)
    save_file(weights, str(out / WEIGHTS_NAME), metadata={"format": "pt"})
    config = {"architecture": arch, "source_checkpoint": str(checkpoint), "class": state.get(CLASS_KEY)}
    (out / CONFIG_NAME).write_text(json.dumps(config, indent=2))
    return out


def _check_fits(model: VTPAutoencoder, weights: dict[str, torch.Tensor], source: Path) -> None:
    own = model.state_dict()
    missing = sorted(set(own) - set(weights))
    wrong = [k for k in own if k in weights and weights[k].shape != own[k].shape]
    if missing or wrong:
        detail = (
            f"missing {missing[0]}" if missing else f"{wrong[0]} has shape {tuple(weights[wrong[0]].shape)}"
        )
        raise CheckpointError(f"{source} does not match its recorded architecture ({detail})")


def from_pretrained(directory: str | Path, map_location: str | torch.device = "cpu") -> VTPAutoencoder:
    """Rebuild a :class:`VTPAutoencoder` from an exported directory or an official VTP one (eval mode)."""
    directory = Path(directory)
    if is_official(directory):
        return official_autoencoder(directory, map_location)
    config_path = directory / CONFIG_NAME
    if not config_path.is_file():
        raise CheckpointError(
            f"{directory} has no {CONFIG_NAME}; export a checkpoint with `vtp-export` first"
        )
    try:
        arch = json.loads(config_path.read_text())["architecture"]
        model = VTPAutoencoder.from_architecture(arch)
    except (ValueError, KeyError, TypeError) as exc:  # JSONDecodeError is a ValueError
        raise CheckpointError(
            f"{config_path} is not a valid export config ({type(exc).__name__}: {exc}); "
            "export the checkpoint again with `vtp-export`"
        ) from None
    weights = _read_safetensors(directory / WEIGHTS_NAME, device=str(map_location))
    _check_fits(model, weights, directory)
    model.load_state_dict(weights, strict=False)
    return model.eval()


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
    model = VTPAutoencoder.from_architecture(arch)
    weights = model.own_weights(state["state_dict"])
    _check_fits(model, weights, path)
    model.load_state_dict(weights, strict=False)
    return model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="vtp-export", description="Export a tokenizer checkpoint to safetensors + config.json."
    )
    parser.add_argument("checkpoint", type=Path, help="Lightning checkpoint written by `lightning fit`")
    parser.add_argument("out_dir", type=Path, help="directory to write model.safetensors and config.json to")
    args = parser.parse_args(argv)
    try:
        out = export_pretrained(args.checkpoint, args.out_dir)
    except VTPError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"exported {args.checkpoint} -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
