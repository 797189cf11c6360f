"""The full Fashion-MNIST (60k train / 10k test) from its IDX gzip files.

Debian's ``dataset-fashion-mnist`` package installs them under ``/usr/share/datasets/fashion-mnist``,
which is the default ``root``. **Captions are templated** over the class name.
"""

from __future__ import annotations

from pathlib import Path

from vtp_lightning.data.sources.idx_files import read_idx
from vtp_lightning.data.sources.labelled_arrays import LabelledArraySource, check_split
from vtp_lightning.data.templates import FASHION_MNIST_CLASSES
from vtp_lightning.errors import DataError

DEFAULT_ROOT = Path("/usr/share/datasets/fashion-mnist")
_PREFIX = {"train": "train", "test": "t10k"}


def _find(root: Path, name: str) -> Path:
    for candidate in (root / f"{name}.gz", root / name):
        if candidate.is_file():
            return candidate
    raise DataError(
        f"Fashion-MNIST file not found: {root / name}.gz; install the Debian package "
        f"`dataset-fashion-mnist` (apt-get install dataset-fashion-mnist, files go to {DEFAULT_ROOT}) "
        "or pass root: <folder holding the IDX .gz files>"
    )


class FashionMNISTIDX(LabelledArraySource):
    """Fashion-MNIST read from the IDX files (grey 28x28, 10 classes, templated captions).

    Args:
        root: folder holding ``{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz``;
            ``None`` uses ``/usr/share/datasets/fashion-mnist`` (Debian ``dataset-fashion-mnist``).
        split: ``"train"`` (60,000 images) or ``"test"`` (10,000 images).
        random_templates: random caption template per draw; ``None`` means "only for the train split".
    """

    def __init__(
        self, root: str | Path | None = None, split: str = "train", random_templates: bool | None = None
    ) -> None:
        check_split(split, "FashionMNISTIDX")
        self.root = Path(root) if root is not None else DEFAULT_ROOT
        prefix = _PREFIX[split]
        images_path = _find(self.root, f"{prefix}-images-idx3-ubyte")
        labels_path = _find(self.root, f"{prefix}-labels-idx1-ubyte")
        images, labels = read_idx(images_path), read_idx(labels_path)
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise DataError(
                f"{images_path} holds {images.shape} images but {labels_path} holds {labels.shape} labels; "
                "they must be (N, H, W) and (N,) from the same split"
            )
        if len(labels) == 0:
            raise DataError(f"{images_path} contains no samples; use a complete Fashion-MNIST file")
        if labels.max() >= len(FASHION_MNIST_CLASSES):
            raise DataError(f"{labels_path} has label {labels.max()}; Fashion-MNIST labels are 0..9")
        self.split = split
        randomize = split == "train" if random_templates is None else random_templates
        super().__init__(images, labels, FASHION_MNIST_CLASSES, randomize)

    def describe(self) -> str:
        return f"FashionMNISTIDX({self.root}, {self.split})"
