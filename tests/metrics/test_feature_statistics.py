"""Streaming statistics equal one-shot ones and survive a round trip through their tensors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vtp_lightning.metrics.feature_statistics import FeatureStatistics


def test_streaming_batches_equal_the_one_shot_statistics() -> None:
    features = torch.randn(1000, 16) * 3 + 7
    streamed = FeatureStatistics(16)
    for batch in features.split(64):
        streamed.update(batch)

    assert streamed.num_samples == 1000
    torch.testing.assert_close(streamed.mean(), features.double().mean(0))
    torch.testing.assert_close(
        streamed.covariance(), torch.from_numpy(np.cov(features.double().numpy(), rowvar=False))
    )


def test_survives_a_round_trip_through_its_tensors() -> None:
    stats = FeatureStatistics.from_features(torch.randn(50, 6))

    rebuilt = FeatureStatistics.from_tensors(**stats.tensors())

    torch.testing.assert_close(rebuilt.covariance(), stats.covariance())


def test_refuses_wrong_feature_sizes_and_too_few_samples() -> None:
    stats = FeatureStatistics(4)
    with pytest.raises(ValueError, match=r"\(B, 4\)"):
        stats.update(torch.randn(3, 5))
    stats.update(torch.randn(1, 4))
    with pytest.raises(ValueError, match="at least 2 samples"):
        stats.covariance()


def test_can_be_fed_inside_and_outside_inference_mode() -> None:
    features = torch.randn(20, 3)
    with torch.inference_mode():
        stats = FeatureStatistics.from_features(features[:10])
    stats.update(features[10:])

    torch.testing.assert_close(stats.mean(), features.double().mean(0))
