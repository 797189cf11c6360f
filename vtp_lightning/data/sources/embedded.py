"""The embedded default dataset: a class-balanced Fashion-MNIST slice shipped inside the package.

10,000 train and 2,000 test images (1,000 / 200 per class), 28x28 grey, built by
``scripts/make_embedded_fashion_mnist.py``. It needs nothing but the installed package, so the demo
and the tests run anywhere. Fashion-MNIST has no captions: **captions are templated** from the class
name (see :mod:`vtp_lightning.data.templates`).
"""

from __future__ import annotations

from importlib import resources

import numpy as np

from vtp_lightning.data.sources.labelled_arrays import LabelledArraySource, check_split
from vtp_lightning.data.templates import FASHION_MNIST_CLASSES
from vtp_lightning.errors import DataError

ASSET = "fashion_mnist_slice.npz"


def _load_asset() -> np.lib.npyio.NpzFile:
    asset = resources.files("vtp_lightning.data") / "assets" / ASSET
    try:
        with resources.as_file(asset) as path:
            return np.load(path)
    except (FileNotFoundError, OSError, ValueError) as exc:
        raise DataError(
            f"the embedded dataset vtp_lightning/data/assets/{ASSET} is missing or unreadable ({exc}); "
            "reinstall the package or rebuild it with `make embedded-data`"
        ) from exc


class EmbeddedFashionMNIST(LabelledArraySource):
    """Fashion-MNIST slice bundled with the package (10k train / 2k test, 10 balanced classes).

    Captions are templated over the class name: a random template per draw for ``split="train"``,
    a fixed one per index for ``split="test"``.

    Args:
        split: ``"train"`` (10,000 images) or ``"test"`` (2,000 images).
        random_templates: random caption template per draw; ``None`` means "only for the train split".
    """

    def __init__(self, split: str = "train", random_templates: bool | None = None) -> None:
        check_split(split, "EmbeddedFashionMNIST")
        with _load_asset() as arrays:
            images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        self.split = split
        randomize = split == "train" if random_templates is None else random_templates
        super().__init__(images, labels, FASHION_MNIST_CLASSES, randomize)

    def describe(self) -> str:
        return f"EmbeddedFashionMNIST({self.split})"
