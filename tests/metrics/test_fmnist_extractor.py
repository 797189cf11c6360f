"""The shipped fmnist network loads with no argument, still classifies Fashion-MNIST well (so its
features mean something), accepts any image size, and is never mistaken for Inception."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file, save_file

from vtp_lightning.errors import ConfigError, WeightsError
from vtp_lightning.metrics.fmnist_extractor import FMNIST_WEIGHTS, FashionMNISTFeatureExtractor
from vtp_lightning.metrics.registry import available_feature_extractors, build_feature_extractor


def test_weights_ship_with_the_package_and_are_small() -> None:
    assert FMNIST_WEIGHTS.is_file()
    assert FMNIST_WEIGHTS.stat().st_size < 2_000_000


def test_classifies_the_embedded_test_images_well(fmnist_extractor, fmnist_test_split) -> None:
    images, labels = fmnist_test_split

    predictions = torch.cat([fmnist_extractor.logits(batch).argmax(1) for batch in images.split(500)])

    accuracy = (predictions == labels).float().mean().item()
    assert accuracy > 0.80
    assert accuracy == pytest.approx(fmnist_extractor.test_accuracy, abs=0.005)


def test_gives_feature_dim_features_for_any_image_size(fmnist_extractor, fmnist_test_split) -> None:
    images = fmnist_test_split[0][:4]

    for size in (28, 32, 64):
        resized = torch.nn.functional.interpolate(images, size=(size, size), mode="bilinear")
        assert fmnist_extractor(resized).shape == (4, fmnist_extractor.feature_dim)


def test_stays_frozen_in_eval_mode(fmnist_extractor) -> None:
    fmnist_extractor.train()

    assert not fmnist_extractor.training
    assert not any(p.requires_grad for p in fmnist_extractor.parameters())


def test_metrics_are_named_fd_fmnist_never_fid(fmnist_extractor) -> None:
    assert fmnist_extractor.metric_name("r") == "rfd_fmnist"
    assert fmnist_extractor.metric_name("g") == "gfd_fmnist"


def test_rejects_weights_made_for_another_architecture(tmp_path) -> None:
    other = tmp_path / "other.safetensors"
    save_file(load_file(str(FMNIST_WEIGHTS)), str(other), metadata={"architecture": "fmnist-cnn-v0"})

    with pytest.raises(WeightsError, match="fmnist-cnn-v0"):
        FashionMNISTFeatureExtractor(other)


def test_rejects_a_missing_weights_file(tmp_path) -> None:
    with pytest.raises(WeightsError, match="train_fmnist_feature_net.py"):
        FashionMNISTFeatureExtractor(tmp_path / "absent.safetensors")


def test_registry_builds_extractors_by_name_and_rejects_unknown_ones() -> None:
    assert available_feature_extractors() == ["fmnist", "inception"]
    assert isinstance(build_feature_extractor("fmnist"), FashionMNISTFeatureExtractor)
    with pytest.raises(ConfigError, match="'vgg'.*fmnist.*inception"):
        build_feature_extractor("vgg")
