"""Read an encoded folder back: ``from_latents(folder)`` is a dataset of normalised latents and labels.

It normalises exactly as LightningDiT's ``ImgLatentDataset`` does with ``latent_norm: true``:
``(latent - mean) / std * multiplier`` with the folder's ``latents_stats.pt``, and picks the flipped
image's latents with probability ``flip_probability`` (LightningDiT: 1/2). Unlike that reader it refuses a
folder without statistics instead of estimating them from a random subset. The arithmetic is the same, so
a bf16 folder's normalised items come out float32 (promoted by the float32 statistics), as there.
"""

from __future__ import annotations

from bisect import bisect_right
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from torch.utils.data import Dataset

from vtp_lightning.errors import DataError
from vtp_lightning.latents.layout import LABELS, LATENTS, LATENTS_FLIP, STATS_FILE
from vtp_lightning.weights.checkpoint_file import load_checkpoint


class LatentFolder(Dataset):
    """``(latent (C, H, W), label)`` items of an encoded folder, in source order.

    Args:
        folder: a folder written by ``lightning predict`` / ``vtp-encode`` (any ``*.safetensors`` shards
            with ``latents``, ``latents_flip``, ``labels`` and a ``latents_stats.pt``).
        normalize: subtract the stored mean and divide by the stored std, per channel.
        multiplier: scale after normalising (LightningDiT's ``latent_multiplier``; 1.0 with statistics).
        flip_probability: chance of returning ``latents_flip`` instead of ``latents`` (0: never).
    """

    def __init__(
        self,
        folder: str | Path,
        normalize: bool = True,
        multiplier: float = 1.0,
        flip_probability: float = 0.0,
    ) -> None:
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise DataError(f"latent folder {self.folder} does not exist; write one with lightning predict")
        self.files = sorted(self.folder.glob("*.safetensors"))
        if not self.files:
            raise DataError(
                f"{self.folder} holds no *.safetensors latent shards; write them with lightning predict"
            )
        self.normalize, self.multiplier = normalize, float(multiplier)
        if not 0.0 <= flip_probability <= 1.0:
            raise DataError(f"flip_probability must be in [0, 1], got {flip_probability}")
        self.flip_probability = flip_probability
        self._starts: list[int] = []
        total = 0
        for path in self.files:
            self._starts.append(total)
            total += _rows(path)
        self._length = total
        self.mean, self.std = read_statistics(self.folder)

    def __len__(self) -> int:
        return self._length

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not 0 <= index < self._length:
            raise IndexError(index)
        file = bisect_right(self._starts, index) - 1
        row = index - self._starts[file]
        flip = self.flip_probability > 0 and float(torch.rand(())) < self.flip_probability
        with safe_open(str(self.files[file]), framework="pt", device="cpu") as f:
            latent = f.get_slice(LATENTS_FLIP if flip else LATENTS)[row : row + 1]
            label = f.get_slice(LABELS)[row : row + 1]
        if self.normalize:
            latent = (latent - self.mean) / self.std
        return (latent * self.multiplier).squeeze(0), label.squeeze(0)

    def all_latents(self, key: str = LATENTS) -> torch.Tensor:
        """Every stored ``latents`` (or ``latents_flip``) row, unnormalised, concatenated in order."""
        parts = []
        for path in self.files:
            with safe_open(str(path), framework="pt", device="cpu") as f:
                parts.append(f.get_tensor(key))
        return torch.cat(parts)


def from_latents(
    folder: str | Path, normalize: bool = True, multiplier: float = 1.0, flip_probability: float = 0.0
) -> LatentFolder:
    """The encoded folder as a dataset of normalised latents and labels (see :class:`LatentFolder`)."""
    return LatentFolder(folder, normalize=normalize, multiplier=multiplier, flip_probability=flip_probability)


def read_statistics(folder: str | Path) -> tuple[torch.Tensor, torch.Tensor]:
    """``mean`` and ``std`` (1, C, 1, 1) from a folder's ``latents_stats.pt`` (read tensors-only)."""
    path = Path(folder) / STATS_FILE
    if not path.is_file():
        raise DataError(
            f"{path} is missing: the encoding did not finish; run the same lightning predict command again",
            where=str(path),
        )
    stats = load_checkpoint(path, what="latent statistics")
    if not isinstance(stats, dict) or "mean" not in stats or "std" not in stats:
        raise DataError(f"{path} holds no mean and std; re-run lightning predict", where=str(path))
    return stats["mean"], stats["std"]


def _rows(path: Path) -> int:
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            return int(f.get_slice(LABELS).get_shape()[0])
    except (OSError, SafetensorError) as exc:
        raise DataError(f"{path} is not a readable latent shard ({exc})", where=str(path)) from exc
