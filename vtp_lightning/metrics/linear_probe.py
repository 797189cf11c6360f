"""Linear probe: how linearly separable frozen features are, the paper's understanding metric.

Features are standardised with the training set's statistics, then one multinomial logistic
regression per (learning rate, weight decay) setting is fitted with Adam and a cosine schedule.
All settings train at once as a single wide matrix product, on mini-batches of 1024 rows: the
problem is convex, so a few hundred mini-batch steps reach the accuracy of full-batch training at a
tenth of its cost (a grid of eight on 10k x 384 features takes about a second on two CPU cores).
As in the paper (and DINO), the reported number is the best held-out top-1 over the grid, with
the setting that reached it; that is slightly optimistic, and it is the convention the published
numbers follow.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from vtp_lightning.errors import DataError


@dataclass(frozen=True)
class LinearProbeResult:
    """Best held-out top-1 (a fraction in ``[0, 1]``) and the setting that reached it."""

    top1: float
    learning_rate: float
    weight_decay: float
    top1_by_setting: dict[tuple[float, float], float]


def _labelled(features: torch.Tensor, labels: torch.Tensor, which: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Drop rows whose label is unknown (``-1``, see docs/CONTRACTS.md)."""
    if features.ndim != 2 or labels.shape != (features.shape[0],):
        raise DataError(
            f"{which}: need features (N, D) and labels (N,), got {tuple(features.shape)}, {tuple(labels.shape)}"
        )
    known = labels >= 0
    if not known.any():
        raise DataError(f"{which}: no labelled samples for the linear probe (all labels are -1)")
    return features[known].float(), labels[known].long()


def _standardise(
    train: torch.Tensor, held_out: torch.Tensor, eps: float = 1e-6
) -> tuple[torch.Tensor, torch.Tensor]:
    mean, std = train.mean(dim=0), train.std(dim=0).clamp_min(eps)
    return (train - mean) / std, (held_out - mean) / std


def _minibatches(num_rows: int, batch_size: int, steps: int, generator: torch.Generator):
    """Index tensors of ``steps`` mini-batches, walking through shuffled epochs."""
    order = torch.randperm(num_rows, generator=generator)
    start = 0
    for _ in range(steps):
        if start + batch_size > num_rows:
            order, start = torch.randperm(num_rows, generator=generator), 0
        yield order[start : start + batch_size]
        start += batch_size


def linear_probe(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    held_out_features: torch.Tensor,
    held_out_labels: torch.Tensor,
    learning_rates: Sequence[float] = (0.01, 0.1),
    weight_decays: Sequence[float] = (0.0, 1e-4, 1e-3, 1e-2),
    steps: int = 300,
    batch_size: int = 1024,
    seed: int = 0,
) -> LinearProbeResult:
    """Fit a linear classifier per grid setting on the training features, score on held-out ones.

    ``weight_decay`` is an L2 penalty ``wd/2 * |W|^2`` added to the mean cross-entropy (biases are
    not penalised). Runs on the device of the features; rows labelled ``-1`` are ignored; the
    mini-batch order is fixed by ``seed``.
    """
    # Callbacks may run under inference mode, whose tensors autograd refuses: fit outside it.
    with torch.inference_mode(False), torch.enable_grad():
        return _fit_and_score(
            train_features.clone(),
            train_labels.clone(),
            held_out_features.clone(),
            held_out_labels.clone(),
            learning_rates,
            weight_decays,
            steps,
            batch_size,
            seed,
        )


def _fit_and_score(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    held_out_features: torch.Tensor,
    held_out_labels: torch.Tensor,
    learning_rates: Sequence[float],
    weight_decays: Sequence[float],
    steps: int,
    batch_size: int,
    seed: int,
) -> LinearProbeResult:
    x_train, y_train = _labelled(train_features, train_labels, "training set")
    x_held, y_held = _labelled(held_out_features, held_out_labels, "held-out set")
    if x_train.shape[1] != x_held.shape[1]:
        raise DataError(f"feature sizes differ: training {x_train.shape[1]}, held-out {x_held.shape[1]}")
    x_train, x_held = _standardise(x_train, x_held)
    num_classes = int(max(y_train.max(), y_held.max())) + 1
    settings = [(lr, wd) for lr in learning_rates for wd in weight_decays]

    dim, device = x_train.shape[1], x_train.device
    weights = [torch.zeros(dim, num_classes, device=device, requires_grad=True) for _ in settings]
    biases = [torch.zeros(num_classes, device=device, requires_grad=True) for _ in settings]
    optimizer = torch.optim.Adam(
        [{"params": [w, b], "lr": lr} for (lr, _), w, b in zip(settings, weights, biases)]
    )
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(steps, 1))
    decay = torch.tensor([wd for _, wd in settings], device=device)

    def logits(x: torch.Tensor) -> torch.Tensor:  # (N, C, settings)
        flat = x @ torch.cat(weights, dim=1) + torch.cat(biases)
        return flat.view(x.shape[0], len(settings), num_classes).transpose(1, 2)

    generator = torch.Generator().manual_seed(seed)
    batch_size = min(batch_size, x_train.shape[0])
    for index in _minibatches(x_train.shape[0], batch_size, steps, generator):
        index = index.to(device)
        targets = y_train[index].unsqueeze(1).expand(-1, len(settings))
        cross_entropy = F.cross_entropy(logits(x_train[index]), targets, reduction="none").mean(dim=0)
        penalty = torch.stack([w.square().sum() for w in weights]) * decay / 2
        optimizer.zero_grad(set_to_none=True)
        (cross_entropy + penalty).sum().backward()
        optimizer.step()
        schedule.step()

    with torch.no_grad():
        correct = (logits(x_held).argmax(dim=1) == y_held.unsqueeze(1)).float().mean(dim=0)
    top1_by_setting = {setting: float(acc) for setting, acc in zip(settings, correct)}
    best = max(settings, key=lambda s: top1_by_setting[s])
    return LinearProbeResult(top1_by_setting[best], best[0], best[1], top1_by_setting)
