"""Official checkpoints used directly where this suite takes weights: ``from_pretrained``,
``init_weights`` and stage 2's ``tokenizer`` convert them in memory (what ``vtp-convert`` writes)."""

from __future__ import annotations

from pathlib import Path

import torch

from vtp_lightning.models.autoencoder import VTPAutoencoder
from vtp_lightning.official.convert import convert
from vtp_lightning.official.source import read_official


def official_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """Every tensor of an official checkpoint under this suite's names (see :mod:`.convert`)."""
    return convert(read_official(path)).state


def official_autoencoder(path: str | Path, map_location: str | torch.device = "cpu") -> VTPAutoencoder:
    """The encode/decode half of an official checkpoint as a :class:`VTPAutoencoder` (eval mode)."""
    converted = convert(read_official(path))
    model = VTPAutoencoder.from_architecture(converted.architecture)
    model.load_state_dict(model.own_weights(converted.state), strict=True)
    return model.to(map_location).eval()
