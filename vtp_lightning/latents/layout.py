"""The on-disk layout of an encoded data set: LightningDiT's ``ImgLatentDataset`` folder.

::

    folder/
      latents_shard00000.safetensors   latents (n, C, H, W), latents_flip (n, C, H, W), labels (n,) int64
      latents_shard00001.safetensors   ... shard k holds samples k·S .. k·S + n - 1 of the source, in order
      latents_stats.pt                 {"mean", "std"}: float32 (1, C, 1, 1) over every ``latents`` value
      encode.json                      what produced the folder (tokenizer, weights hash, size, dtype, N, source)

A reader that sorts the ``*.safetensors`` names and concatenates them gets the samples in source order.
Each shard also carries one metadata entry (``vtp_shard``, JSON): its first index, its sample count, the
run's fingerprint and its float64 channel moments, so a resumed run can skip finished shards and the
statistics can be combined without reading the latents again. (safetensors writes its metadata map in
no fixed order, so it is one key holding sorted JSON: the same shard is the same bytes every run.)
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from safetensors import SafetensorError, safe_open

from vtp_lightning.errors import DataError
from vtp_lightning.latents.statistics import ChannelMoments

LATENTS, LATENTS_FLIP, LABELS = "latents", "latents_flip", "labels"
STATS_FILE = "latents_stats.pt"
RECORD_FILE = "encode.json"
SHARD_METADATA_KEY = "vtp_shard"
_SHARD_NAME = re.compile(r"^latents_shard(\d{5,})\.safetensors$")


def shard_name(shard: int) -> str:
    """File name of shard ``shard``; zero-padded so name order is sample order."""
    return f"latents_shard{shard:05d}.safetensors"


def partial_name(shard: int, rank: int) -> str:
    """Where a shard is written before it is complete (not ``*.safetensors``: no reader picks it up)."""
    return f".{shard_name(shard)}.rank{rank}.partial"


@dataclass(frozen=True)
class ShardInfo:
    """What a finished shard's metadata says about it."""

    shard: int
    first_index: int
    count: int
    fingerprint: str
    moments: ChannelMoments

    def to_metadata(self) -> dict[str, str]:
        record = {
            "count": self.count,
            "first_index": self.first_index,
            "fingerprint": self.fingerprint,
            "moments": json.loads(self.moments.to_text()),
            "shard": self.shard,
        }
        return {SHARD_METADATA_KEY: json.dumps(record, sort_keys=True)}


def read_shard_info(path: Path) -> ShardInfo:
    """The metadata of a shard this suite wrote; a :class:`DataError` for a file it cannot read."""
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            metadata = f.metadata() or {}
        record: dict[str, Any] = json.loads(metadata[SHARD_METADATA_KEY])
        return ShardInfo(
            shard=int(record["shard"]),
            first_index=int(record["first_index"]),
            count=int(record["count"]),
            fingerprint=str(record["fingerprint"]),
            moments=ChannelMoments.from_text(json.dumps(record["moments"])),
        )
    except (OSError, KeyError, ValueError, TypeError, SafetensorError) as exc:
        raise DataError(
            f"{path} is not a complete latent shard written by vtp-lightning ({exc}); delete it and run "
            "again to re-encode that shard",
            where=str(path),
        ) from exc


def shard_files(folder: Path) -> dict[int, Path]:
    """Shard number -> path of every finished shard in ``folder``."""
    found = {}
    for path in sorted(folder.glob("*.safetensors")):
        match = _SHARD_NAME.match(path.name)
        if match:
            found[int(match.group(1))] = path
    return found
