"""The sizes the side-by-side benchmark runs at, and one synthetic training batch per size.

``demo`` is ``experiments/clip_ssl_ae.yaml`` (tiny encoder, 32 px, batch 64). ``S`` is the paper's
VTP-S recipe (``experiments/scale/vtp_s.yaml``: 256 px, f16d64, 65 536 prototypes, 8 local crops of
96 px) at batch 8 with every row in the SSL views, small enough for a CPU.

Both contenders get the same batch: random images, captions and crops in the layout
``VTPDataModule`` yields, with iBOT masks from the suite's block-mask generator.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import torch

from vtp_lightning.config_files import load_config
from vtp_lightning.data.masking import BlockMaskGenerator
from vtp_lightning.data.views import default_local_crop_size

EOT_TOKEN = 49407  # the highest BPE id: text towers pool at the argmax token


@dataclass(frozen=True)
class BenchSize:
    """Model options and batch shape of one benchmark size."""

    name: str
    model: dict[str, Any]
    batch_size: int
    ssl_rows: int
    num_local: int
    local_size: int
    context_length: int
    mask_ratio: tuple[float, float]
    mask_probability: float

    @property
    def image_size(self) -> int:
        return int(self.model.get("image_size", 32))

    @property
    def patch_size(self) -> int:
        return int(self.model.get("patch_size", 4))


def _from_config(name: str, path: str, **batch: Any) -> BenchSize:
    config = load_config(path)
    model = dict(config["model"].get("init_args", {}))
    data = config["data"]
    model.setdefault("image_size", data.get("image_size", 32))
    model.setdefault("patch_size", data.get("patch_size", 4))
    model["rec_perceptual_weights"] = None  # L1 on both sides: no LPIPS weights file is assumed
    model["clip_text_context_length"] = model.get("clip_text_context_length", data.get("context_length", 32))
    image, patch = model["image_size"], model["patch_size"]
    defaults = {
        "batch_size": data.get("batch_size", 64),
        "ssl_rows": data.get("ssl_batch_size") or data.get("batch_size", 64),
        "num_local": data.get("num_local_crops", 4),
        "local_size": data.get("local_crop_size") or default_local_crop_size(image, patch),
        "context_length": data.get("context_length", 32),
        "mask_ratio": tuple(data.get("mask_ratio", (0.1, 0.5))),
        "mask_probability": data.get("mask_probability", 0.5),
    }
    return BenchSize(name=name, model=model, **{**defaults, **batch})


def bench_sizes(names: list[str]) -> list[BenchSize]:
    known = {
        "demo": lambda: _from_config("demo", "experiments/clip_ssl_ae.yaml"),
        "S": lambda: _from_config("S", "experiments/scale/vtp_s.yaml", batch_size=8, ssl_rows=8),
    }
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"unknown bench size(s) {unknown}; choose from {sorted(known)}")
    return [known[n]() for n in names]


def synthetic_batch(size: BenchSize, seed: int = 0) -> dict[str, torch.Tensor]:
    """A training batch of ``size``'s shapes (the layout of ``docs/CONTRACTS.md``)."""
    g = torch.Generator().manual_seed(seed)
    b, n, s, p = size.batch_size, size.ssl_rows, size.image_size, size.patch_size
    text = torch.randint(1, 40000, (b, size.context_length), generator=g)
    text[torch.arange(b), torch.randint(2, size.context_length, (b,), generator=g)] = EOT_TOKEN
    random.seed(seed)  # the mask generator draws from Python's RNG
    masks = BlockMaskGenerator(s // p, size.mask_ratio, size.mask_probability)(2 * n)
    local = size.local_size
    return {
        "image": torch.rand(b, 3, s, s, generator=g) * 2 - 1,
        "text": text,
        "label": torch.zeros(b, dtype=torch.long),
        "global_crops": torch.rand(2, n, 3, s, s, generator=g) * 2 - 1,
        "local_crops": torch.rand(size.num_local, n, 3, local, local, generator=g) * 2 - 1,
        "masks": masks.reshape(2, n, s // p, s // p),
    }
