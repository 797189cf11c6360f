"""Build the embedded default dataset: a stratified slice of Fashion-MNIST.

Reads Debian's ``dataset-fashion-mnist`` IDX files and writes
``vtp_lightning/data/assets/fashion_mnist_slice.npz`` with 1000 train and 200 test images per class
(10k + 2k, uint8 28x28). The first images of each class are taken, in file order, so the slice is
reproducible. Run with ``make embedded-data``.
"""

from __future__ import annotations

import argparse
import gzip
from pathlib import Path

import numpy as np

DEFAULT_ROOT = Path("/usr/share/datasets/fashion-mnist")
OUT = Path(__file__).resolve().parents[1] / "vtp_lightning" / "data" / "assets" / "fashion_mnist_slice.npz"


def read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def stratified(images: np.ndarray, labels: np.ndarray, per_class: int) -> tuple[np.ndarray, np.ndarray]:
    keep = np.concatenate([np.flatnonzero(labels == c)[:per_class] for c in range(10)])
    keep.sort()
    return images[keep], labels[keep]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT, help="folder with the IDX .gz files")
    parser.add_argument("--train-per-class", type=int, default=1000)
    parser.add_argument("--test-per-class", type=int, default=200)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    tr_x, tr_y = stratified(
        read_idx(args.root / "train-images-idx3-ubyte.gz"),
        read_idx(args.root / "train-labels-idx1-ubyte.gz"),
        args.train_per_class,
    )
    te_x, te_y = stratified(
        read_idx(args.root / "t10k-images-idx3-ubyte.gz"),
        read_idx(args.root / "t10k-labels-idx1-ubyte.gz"),
        args.test_per_class,
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, train_images=tr_x, train_labels=tr_y, test_images=te_x, test_labels=te_y)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.1f} MB): train {tr_x.shape}, test {te_x.shape}")


if __name__ == "__main__":
    main()
