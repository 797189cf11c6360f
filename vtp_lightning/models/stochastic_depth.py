"""Stochastic depth that computes a residual branch only on the rows it keeps (DINOv2's form).

The per-sample form (``timm.layers.drop_path``) runs the branch on every sample and multiplies the
dropped ones by zero, so it saves nothing. Here a random subset of ``k`` samples goes through the
branch, its output is scaled by ``B / k`` and added back to those rows; the other rows pass through.

``k`` is ``keep · B`` rounded stochastically (``floor`` plus one with probability equal to the
fractional part), clamped to ``[1, B]``. So each row is kept with probability ``keep`` on average, as
in the per-sample form (plain rounding would drop nothing at small rates and small batches), and
the output is unbiased for any distribution of ``k >= 1``: conditioned on ``k`` a row is kept with
probability ``k / B`` and then weighted ``B / k``, so its expected residual is the branch itself.
timm offers only the per-sample masking form, hence this module.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch


def kept_row_count(batch: int, drop_rate: float) -> int:
    """How many of ``batch`` rows run the branch this call: ``(1 - drop_rate) · batch``, rounded at random."""
    exact = (1.0 - drop_rate) * batch
    whole = math.floor(exact)
    # A CPU draw: no device synchronisation, whatever device the activations are on.
    if torch.rand(()).item() < exact - whole:
        whole += 1
    return min(max(whole, 1), batch)


def kept_samples(batch: int, drop_rate: float, training: bool, device: torch.device) -> torch.Tensor | None:
    """The samples whose residual branch runs this call, a random subset of ``batch`` (the draw both
    functions below share); None when every sample runs it: outside training, at ``drop_rate`` 0, or
    when the rounded count keeps all of them."""
    if not training or drop_rate <= 0.0:
        return None
    kept = kept_row_count(batch, drop_rate)
    if kept == batch:
        return None
    return torch.randperm(batch, device=device)[:kept]


def add_residual_on_kept_rows(
    x: torch.Tensor,
    branch: Callable[[torch.Tensor], torch.Tensor],
    drop_rate: float,
    training: bool,
) -> torch.Tensor:
    """``x + branch(x)`` with stochastic depth over the batch (first) dimension.

    Outside training, or at ``drop_rate`` 0, this is exactly ``x + branch(x)``. ``branch`` must treat
    rows independently (attention within a sample, token-wise FFN), which holds for a ViT block.
    """
    batch = x.shape[0]
    rows = kept_samples(batch, drop_rate, training, x.device)
    if rows is None:
        return x + branch(x)
    residual = branch(x[rows])
    flat = x.flatten(1)
    out = torch.index_add(flat, 0, rows, residual.flatten(1).to(x.dtype), alpha=batch / len(rows))
    return out.view_as(x)


def add_residual_on_kept_samples(
    rows: torch.Tensor,
    sample_of_row: torch.Tensor,
    batch: int,
    branch: Callable[[torch.Tensor], torch.Tensor],
    drop_rate: float,
    training: bool,
) -> torch.Tensor:
    """:func:`add_residual_on_kept_rows` for token rows ``(M, D)`` gathered from a batch of ``batch`` samples.

    The same sample-level draw (``k`` of ``batch`` samples keep the branch, weighted ``batch / k``),
    applied to the rows of the kept samples; ``sample_of_row`` ``(M,)`` says which sample each row
    came from. Used where a block computes only some tokens of each sample.
    """
    samples = kept_samples(batch, drop_rate, training, rows.device)
    if samples is None:
        return rows + branch(rows)
    index = torch.isin(sample_of_row, samples).nonzero().squeeze(1)
    residual = branch(rows[index])
    return torch.index_add(rows, 0, index, residual.to(rows.dtype), alpha=batch / len(samples))
