"""Fixtures that write real data files (PNGs, IDX gzip files, tar shards) in tmp_path.

Helpers reach the tests through the ``files`` fixture rather than an import, so the tests do not
depend on how pytest puts test folders on ``sys.path``.
"""

from __future__ import annotations

import gzip
import io
import tarfile
from collections.abc import Callable, Sequence
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image


def png_bytes(value: int, size: tuple[int, int] = (20, 16)) -> bytes:
    """A PNG whose pixels all equal ``value`` (so a test can tell images apart after decoding)."""
    buffer = io.BytesIO()
    Image.new("RGB", size, (value, value, value)).save(buffer, format="PNG")
    return buffer.getvalue()


def write_png(path: Path, value: int, size: tuple[int, int] = (20, 16)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png_bytes(value, size))
    return path


def write_idx(path: Path, array: np.ndarray) -> Path:
    """Write a uint8 array as a gzip IDX file (magic 0x0000 08 ndim, big-endian sizes, data)."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())
    return path


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    """``root/ankle_boot`` with 3 images (values 10, 11, 12) and ``root/bag`` with 2 (20, 21)."""
    root = tmp_path / "folder"
    for i in range(3):
        write_png(root / "ankle_boot" / f"{i}.png", 10 + i)
    for i in range(2):
        write_png(root / "bag" / "nested" / f"{i}.png", 20 + i)
    return root


@pytest.fixture
def idx_root(tmp_path: Path) -> Path:
    """Fashion-MNIST-format IDX files: 20 train and 10 test images, image i has pixel value i, label i % 10."""
    root = tmp_path / "fashion-mnist"
    root.mkdir()
    for prefix, count in (("train", 20), ("t10k", 10)):
        images = np.repeat(np.arange(count, dtype=np.uint8), 28 * 28).reshape(count, 28, 28)
        write_idx(root / f"{prefix}-images-idx3-ubyte.gz", images)
        write_idx(root / f"{prefix}-labels-idx1-ubyte.gz", np.arange(count, dtype=np.uint8) % 10)
    return root


ShardSample = tuple[str, dict[str, bytes]]


@pytest.fixture
def make_shard(tmp_path: Path) -> Callable[[str, Sequence[ShardSample]], Path]:
    """Write a WebDataset tar: each sample is ``(key, {"png": ..., "txt": ..., "cls": ...})``."""

    def make(name: str, samples: Sequence[ShardSample]) -> Path:
        path = tmp_path / name
        with tarfile.open(path, "w") as tar:
            for key, files in samples:
                for suffix, data in files.items():
                    info = tarfile.TarInfo(f"{key}.{suffix}")
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
        return path

    return make


def shard_sample(index: int, label: int | None = None, caption: str | None = None) -> ShardSample:
    """A shard sample with pixel value ``index`` and caption ``"caption {index}"``."""
    files = {
        "png": png_bytes(index),
        "txt": (caption if caption is not None else f"caption {index}").encode(),
    }
    if label is not None:
        files["cls"] = str(label).encode()
    return f"sample{index:05d}", files


@pytest.fixture
def files() -> SimpleNamespace:
    """The helpers: ``png_bytes``, ``write_png``, ``write_idx``, ``shard_sample``."""
    return SimpleNamespace(
        png_bytes=png_bytes, write_png=write_png, write_idx=write_idx, shard_sample=shard_sample
    )
