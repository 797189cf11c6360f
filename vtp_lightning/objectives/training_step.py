"""The tokenizer's training step, written once: the module's ``training_step`` and the bench both run it.

- :func:`objective_losses`: the forward pass, every enabled objective's loss and their weighted sum;
- :func:`train_step`: one whole optimiser step outside Lightning (zero the gradients, the losses,
  backward, the optimiser, then the module's after-step services: EMA teacher, logit-scale clamp).

Under Lightning, ``training_step`` returns :func:`objective_losses`'s total, Lightning runs the backward
and the optimiser (with clipping, accumulation and precision), and the module's ``optimizer_step`` hook
runs the same after-step services, so both paths compute the same step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from vtp_lightning.errors import ConfigError

if TYPE_CHECKING:
    from vtp_lightning.objectives.base import TokenizerModule


@dataclass
class StepLosses:
    """One step's losses: the weighted total (with its graph) and what to log (detached).

    ``logs`` holds ``loss_<objective>`` (the unweighted loss) and each objective's extra terms.
    """

    total: torch.Tensor
    logs: dict[str, torch.Tensor]
    #: objective name -> unweighted loss (detached), in registration order
    per_objective: dict[str, torch.Tensor]


def objective_losses(module: TokenizerModule, batch: dict[str, Any]) -> StepLosses:
    """Sum ``weight * loss`` over the enabled objectives, with the step cache fresh for this step only."""
    enabled = [o for o in module.objectives.values() if o.enabled]
    if not enabled:
        raise ConfigError("every objective has weight 0; enable at least one (e.g. rec_weight: 0.1)")
    module.step_cache = {}
    total: torch.Tensor | None = None
    logs: dict[str, torch.Tensor] = {}
    per_objective: dict[str, torch.Tensor] = {}
    for objective in enabled:
        out = objective.loss(batch)
        weighted = objective.weight * out.loss
        total = weighted if total is None else total + weighted
        per_objective[objective.name] = out.loss.detach()
        logs[f"loss_{objective.name}"] = per_objective[objective.name]
        logs.update({k: v.detach() for k, v in out.logs.items()})
    module.step_cache = {}
    assert total is not None  # at least one objective is enabled
    return StepLosses(total, logs, per_objective)


def train_step(
    module: TokenizerModule, batch: dict[str, Any], optimizer: torch.optim.Optimizer
) -> StepLosses:
    """One full optimiser step as Lightning runs it for the module, minus clipping, accumulation and
    mixed precision (what the bench times)."""
    optimizer.zero_grad(set_to_none=True)
    losses = objective_losses(module, batch)
    losses.total.backward()
    optimizer.step()
    module.after_optimizer_step()
    return losses
