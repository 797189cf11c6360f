"""Metric labels: a Fréchet distance always names its feature extractor; directions are right."""

from __future__ import annotations

import pytest

from vtp_lightning.report.figures.common import spearman
from vtp_lightning.report.metric_names import axis_label, lower_is_better, metric_label, metric_order


@pytest.mark.parametrize(
    ("name", "label"),
    [
        ("eval/gfid", "gFID (Inception)"),
        ("eval/rfid", "rFID (Inception)"),
        ("eval/gfd_fmnist", "gFD (fmnist-net features)"),
        ("eval/rfd_fmnist", "rFD (fmnist-net features)"),
        ("eval/gfd_dinov2", "gFD (dinov2 features)"),
        ("eval/probe_latent_top1", "linear probe top-1 (bottleneck latent)"),
        ("eval/something_new", "something_new"),
    ],
)
def test_labels_name_the_feature_extractor(name: str, label: str) -> None:
    assert metric_label(name) == label


def test_distances_are_lower_is_better_and_accuracies_higher() -> None:
    assert lower_is_better("eval/gfd_fmnist") and lower_is_better("eval/rfid")
    assert lower_is_better("eval/zeroshot_top1") is False and lower_is_better("eval/psnr") is False
    assert lower_is_better("eval/something_new") is None
    assert axis_label("eval/gfid") == "gFID (Inception), lower is better"


def test_generation_comes_first_then_reconstruction_then_the_rest() -> None:
    names = ["eval/zeroshot_top1", "eval/zzz", "eval/psnr", "eval/rfd_fmnist", "eval/gfd_fmnist"]
    assert metric_order(names) == [
        "eval/gfd_fmnist",
        "eval/rfd_fmnist",
        "eval/psnr",
        "eval/zeroshot_top1",
        "eval/zzz",
    ]


def test_rank_correlation() -> None:
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert spearman([1, 2], [1, 2]) is None
    assert spearman([1, 1, 1], [1, 2, 3]) is None
