"""The linear probe finds linear structure when it exists and none when it does not."""

from __future__ import annotations

import pytest
import torch

from vtp_lightning.errors import DataError
from vtp_lightning.metrics.linear_probe import linear_probe


def clustered_features(
    num: int, dim: int, num_classes: int, seed: int, centres: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    if centres is None:
        centres = torch.randn(num_classes, dim, generator=generator) * 0.3
    labels = torch.randint(0, num_classes, (num,), generator=generator)
    features = (
        centres[labels] + torch.randn(num, dim, generator=generator) + 5.0
    )  # offset: standardise it away
    return features, labels, centres


def test_reaches_high_accuracy_on_linearly_separable_features() -> None:
    # 10k x 384, the size of a real probe: about a second on 2 idle cores (not asserted: shared CI
    # machines make wall-clock limits flaky).
    train_x, train_y, centres = clustered_features(10_000, 384, 10, seed=0)
    held_x, held_y, _ = clustered_features(2_000, 384, 10, seed=1, centres=centres)

    result = linear_probe(train_x, train_y, held_x, held_y)

    assert result.top1 > 0.95
    assert result.top1 == max(result.top1_by_setting.values())
    assert result.top1_by_setting[(result.learning_rate, result.weight_decay)] == result.top1
    assert len(result.top1_by_setting) == 8


def test_is_at_chance_on_shuffled_labels() -> None:
    generator = torch.Generator().manual_seed(0)
    train_x, held_x = torch.randn(2_000, 64, generator=generator), torch.randn(1_000, 64, generator=generator)
    train_y, held_y = (
        torch.randint(0, 4, (2_000,), generator=generator),
        torch.randint(0, 4, (1_000,), generator=generator),
    )

    result = linear_probe(train_x, train_y, held_x, held_y)

    assert result.top1 < 0.35


def test_ignores_unlabelled_rows_and_refuses_sets_without_labels() -> None:
    train_x, train_y, centres = clustered_features(1_000, 16, 3, seed=0)
    held_x, held_y, _ = clustered_features(300, 16, 3, seed=1, centres=centres * 10)
    train_y[:100] = -1

    assert linear_probe(train_x, train_y, held_x, held_y, steps=100).top1 > 0.95
    with pytest.raises(DataError, match="no labelled samples"):
        linear_probe(train_x, torch.full_like(train_y, -1), held_x, held_y)


def test_works_when_called_under_inference_mode_like_a_validation_hook() -> None:
    with torch.inference_mode():
        train_x, train_y, centres = clustered_features(500, 8, 2, seed=0)
        held_x, held_y, _ = clustered_features(200, 8, 2, seed=1, centres=centres * 10)

        result = linear_probe(train_x, train_y, held_x, held_y, steps=50)

    assert result.top1 > 0.95
