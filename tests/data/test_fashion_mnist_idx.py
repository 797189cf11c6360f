"""Full Fashion-MNIST from IDX gzip files (written by the test; the Debian files when installed)."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from vtp_lightning.data import FASHION_MNIST_CLASSES, FashionMNISTIDX
from vtp_lightning.data.sources.fashion_mnist_idx import DEFAULT_ROOT
from vtp_lightning.errors import DataError


def test_reads_images_labels_and_templated_captions(idx_root: Path) -> None:
    train = FashionMNISTIDX(root=idx_root, split="train")
    test = FashionMNISTIDX(root=idx_root, split="test")
    assert (len(train), len(test)) == (20, 10)
    sample = train[13]
    assert sample.image.shape == (28, 28) and int(sample.image[5, 5]) == 13
    assert sample.label == 3
    assert FASHION_MNIST_CLASSES[3] in sample.caption
    assert test.class_names == list(FASHION_MNIST_CLASSES)


def test_missing_files_name_the_path_and_the_debian_package(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"nowhere/train-images-idx3-ubyte\.gz.*dataset-fashion-mnist"):
        FashionMNISTIDX(root=tmp_path / "nowhere")


def test_truncated_file_names_the_file(idx_root: Path) -> None:
    path = idx_root / "t10k-images-idx3-ubyte.gz"
    data = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(data[:-100]))
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte\.gz is truncated"):
        FashionMNISTIDX(root=idx_root, split="test")


def test_not_an_idx_file(idx_root: Path) -> None:
    (idx_root / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(b"hello world"))
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte\.gz is not a uint8 IDX file"):
        FashionMNISTIDX(root=idx_root, split="test")


@pytest.mark.skipif(
    not (DEFAULT_ROOT / "t10k-images-idx3-ubyte.gz").is_file(), reason="dataset-fashion-mnist absent"
)
def test_default_root_is_the_debian_package() -> None:
    test = FashionMNISTIDX(split="test")
    assert len(test) == 10_000
    assert np.bincount(np.asarray(test.labels())).tolist() == [1000] * 10
