"""The data pipeline at the scale presets' settings, in images per second per CPU core.

What one DataLoader worker does for a VTP-S/B/L run (``experiments/scale/*.yaml`` data block):
decode a JPEG, the 256 px reconstruction view and caption tokens for every row, and for the SSL
rows 2 global crops (256 px), 8 local crops (96 px) and iBOT block masks, then collate. Measured in
this process with one thread and no workers, so the figure is per core: the workers a GPU needs
are its training images/s divided by it.

The images are synthetic JPEGs of ImageNet's typical size (about 400 x 350), smooth gradients with
noise, written to a temporary image folder.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from vtp_lightning.config_files import load_config
from vtp_lightning.data import VTPDataModule
from vtp_lightning.data.sources.image_folder import ImageFolder


def _write_jpegs(root: Path, count: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    for i in range(count):
        folder = root / f"class_{i % 2}"
        folder.mkdir(parents=True, exist_ok=True)
        h, w = 350 + int(rng.integers(-30, 30)), 400 + int(rng.integers(-40, 40))
        ys, xs = np.mgrid[0:h, 0:w]
        base = np.stack([(xs * (c + 1) + ys * (3 - c)) % 256 for c in range(3)], axis=-1)
        pixels = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"{i:05d}.jpg", quality=90)


def _images_per_second(datamodule: VTPDataModule, batches: int) -> float:
    loader = iter(datamodule.train_dataloader())
    next(loader)
    start = time.perf_counter()
    for _ in range(batches):
        next(loader)
    return batches * datamodule.batch_size / (time.perf_counter() - start)


def bench_scale_data(
    preset: str = "experiments/scale/vtp_s.yaml", batch_size: int = 32, batches: int = 3
) -> None:
    data = {k: v for k, v in load_config(preset)["data"].items() if not isinstance(v, dict)}
    ssl_share = data["ssl_batch_size"] / data["batch_size"]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    print(
        f"\ndata pipeline at {Path(preset).stem}'s settings ({data['image_size']} px, 2 global + "
        f"{data['num_local_crops']} local {data['local_crop_size']} px crops + masks), 1 core, batch {batch_size}:"
    )
    try:
        with tempfile.TemporaryDirectory() as tmp:
            _write_jpegs(Path(tmp), batch_size * (batches + 1))
            for label, ssl_rows in (
                (f"preset share of SSL rows ({ssl_share:.0%})", max(1, round(batch_size * ssl_share))),
                ("every row with multi-crop views", batch_size),
            ):
                args = {**data, "batch_size": batch_size, "ssl_batch_size": ssl_rows, "num_workers": 0}
                datamodule = VTPDataModule(train=ImageFolder(tmp), val=ImageFolder(tmp), **args)
                rate = _images_per_second(datamodule, batches)
                print(f"  {label}: {rate:.0f} images/s per core")
    finally:
        torch.set_num_threads(threads)
