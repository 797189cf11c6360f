"""The ``fmnist`` extractor: features of a small CNN trained on the embedded Fashion-MNIST slice.

It exists so that the default data can be scored out of the box, with no download: its weights ship
inside the package (``metrics/assets/fmnist_feature_net.safetensors``, made by
``scripts/train_fmnist_feature_net.py``; about 90% top-1 on the embedded test split).

**Why rFD-fmnist / gFD-fmnist are not FIDs.** A Fréchet distance is only meaningful relative to
the network whose features it compares. FID is defined by one specific network, InceptionV3 trained
on ImageNet, seen through its 2048-d pool features of 299x299 inputs; published rFID / gFID values
(e.g. VTP's 0.36 rFID) are distances between 50k ImageNet images in that space. ``rfd_fmnist`` and
``gfd_fmnist`` measure the same statistic in a different space: 192-d features of a ~240k-parameter
CNN that was trained only to tell ten kinds of grey 28x28 clothing apart, at 32x32. Its features have
another scale and dimension, respond to other image properties (it is blind to whatever it never
needed for those ten classes, and knows nothing of colour or natural images), and the embedded
evaluation sets hold a few thousand images, while the Fréchet distance is biased upwards at small
sample sizes. The numbers are therefore useful to compare runs of this suite with each other — same
extractor weights (their hash is part of the reference-statistics cache key), same data and number
of images — and to see trends such as AE-only vs CLIP+SSL+AE, but they cannot be put next to a
published FID, and their absolute size carries no meaning outside this setting. That is why they
are never logged under the name FID.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file

from vtp_lightning.errors import WeightsError
from vtp_lightning.metrics.feature_extractor import FeatureExtractor
from vtp_lightning.metrics.file_hash import sha256_of_file
from vtp_lightning.metrics.fmnist_net import FMNIST_FEATURE_DIM, FMNIST_NET_ARCHITECTURE, FashionMNISTNet

FMNIST_WEIGHTS = Path(__file__).resolve().parent / "assets" / "fmnist_feature_net.safetensors"


def _read_weights(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    if not path.is_file():
        raise WeightsError(
            f"fmnist feature-net weights {path} do not exist; they ship with the package, or can be "
            "rebuilt with `python scripts/train_fmnist_feature_net.py`"
        )
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
        return load_file(str(path)), metadata
    except (SafetensorError, OSError) as error:
        raise WeightsError(
            f"fmnist feature-net weights {path} are not a readable safetensors file: {error}"
        ) from error


class FashionMNISTFeatureExtractor(FeatureExtractor):
    """192-d features of the embedded Fashion-MNIST CNN; distances are logged as ``rfd_fmnist``."""

    name = "fmnist"
    feature_dim = FMNIST_FEATURE_DIM

    def __init__(self, weights: str | Path | None = None) -> None:
        super().__init__()
        path = Path(weights).expanduser() if weights else FMNIST_WEIGHTS
        state_dict, metadata = _read_weights(path)
        architecture = metadata.get("architecture")
        if architecture != FMNIST_NET_ARCHITECTURE:
            raise WeightsError(
                f"fmnist feature-net weights {path} were made for architecture {architecture!r}, this code "
                f"builds {FMNIST_NET_ARCHITECTURE!r}; retrain with `python scripts/train_fmnist_feature_net.py`"
            )
        self.network = FashionMNISTNet()
        try:
            self.network.load_state_dict(state_dict)
        except RuntimeError as error:
            raise WeightsError(f"fmnist feature-net weights {path} do not fit the network: {error}") from None
        self.weights_sha256 = sha256_of_file(path)
        self.test_accuracy = float(metadata.get("test_accuracy", "nan"))
        self.freeze()

    @torch.no_grad()
    def forward(self, images01: torch.Tensor) -> torch.Tensor:
        self.check_images(images01)
        return self.network.features(images01)

    @torch.no_grad()
    def logits(self, images01: torch.Tensor) -> torch.Tensor:
        """Fashion-MNIST class logits ``(B, 10)``: shows the features still mean something."""
        self.check_images(images01)
        return self.network(images01)

    @torch.no_grad()
    def logits_from_features(self, features: torch.Tensor) -> torch.Tensor:
        """Class logits from features this extractor produced (the head alone; no second pass)."""
        return self.network.classifier(features.to(self.network.classifier.weight.dtype))
