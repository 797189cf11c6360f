"""What a mixin hands to the base: a named, weighted loss function."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass
class ObjectiveOutput:
    """One objective's loss for a step, plus extra terms to log (already weighted inside ``loss``)."""

    loss: torch.Tensor
    logs: dict[str, torch.Tensor] = field(default_factory=dict)


@dataclass
class Objective:
    """A registered objective: enabled when ``weight > 0``; ``validate`` optionally scores a val batch."""

    name: str
    weight: float
    loss: Callable[[dict[str, Any]], ObjectiveOutput]
    validate: Callable[[dict[str, Any]], dict[str, torch.Tensor]] | None = None

    @property
    def enabled(self) -> bool:
        return self.weight > 0
