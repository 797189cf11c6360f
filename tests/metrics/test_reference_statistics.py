"""Reference statistics are computed once per (data, extractor, weights, count, size) and then read
from disk."""

from __future__ import annotations

from pathlib import Path

import torch

from vtp_lightning.metrics.feature_extractor import FeatureExtractor
from vtp_lightning.metrics.reference_statistics import (
    CACHE_DIR_ENV,
    ReferenceStatisticsCache,
    ReferenceStatisticsKey,
    cached_reference_statistics,
    default_cache_dir,
)


class CountingExtractor(FeatureExtractor):
    """Channel means and standard deviations as 6-d features; counts how often it runs."""

    name = "counting"
    feature_dim = 6
    weights_sha256 = "0" * 64

    def __init__(self) -> None:
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(()), requires_grad=False)  # gives it a device
        self.calls = 0

    def forward(self, images01: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return torch.cat([images01.mean(dim=(2, 3)), images01.std(dim=(2, 3))], dim=1)


def real_batches() -> list[torch.Tensor]:
    return list(torch.rand(40, 3, 8, 8, generator=torch.Generator().manual_seed(0)).split(10))


def test_second_call_reads_the_cache_instead_of_recomputing(tmp_path: Path) -> None:
    extractor = CountingExtractor()
    first = cached_reference_statistics(extractor, "toy:val", real_batches, 40, 8, cache_dir=tmp_path)
    calls_after_first = extractor.calls

    loaded_batches = []
    second = cached_reference_statistics(
        extractor, "toy:val", lambda: loaded_batches.append(1) or real_batches(), 40, 8, cache_dir=tmp_path
    )

    assert calls_after_first == 4
    assert extractor.calls == calls_after_first and loaded_batches == []
    assert second.num_samples == 40
    torch.testing.assert_close(second.covariance(), first.covariance())


def test_any_change_of_data_count_size_or_weights_is_a_miss(tmp_path: Path) -> None:
    extractor = CountingExtractor()
    cached_reference_statistics(extractor, "toy:val", real_batches, 40, 8, cache_dir=tmp_path)
    for data_id, num_images, image_size in [("toy:train", 40, 8), ("toy:val", 30, 8), ("toy:val", 40, 16)]:
        before = extractor.calls
        cached_reference_statistics(
            extractor, data_id, real_batches, num_images, image_size, cache_dir=tmp_path
        )
        assert extractor.calls > before, (data_id, num_images, image_size)

    retrained = CountingExtractor()
    retrained.weights_sha256 = "1" * 64
    cached_reference_statistics(retrained, "toy:val", real_batches, 40, 8, cache_dir=tmp_path)
    assert retrained.calls == 4


def test_a_corrupt_cache_file_is_recomputed(tmp_path: Path) -> None:
    extractor = CountingExtractor()
    key = ReferenceStatisticsKey.for_extractor("toy:val", extractor, 40, 8)
    cache = ReferenceStatisticsCache(tmp_path)
    cache.path_for(key).write_bytes(b"truncated")

    stats = cached_reference_statistics(extractor, "toy:val", real_batches, 40, 8, cache_dir=tmp_path)

    assert extractor.calls == 4 and stats.num_samples == 40
    assert cache.load(key) is not None


def test_cache_folder_follows_the_environment(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path))
    assert default_cache_dir() == tmp_path / "fid_stats"

    monkeypatch.delenv(CACHE_DIR_ENV)
    assert default_cache_dir() == Path.home() / ".cache" / "vtp_lightning" / "fid_stats"
