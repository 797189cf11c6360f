"""EMATeacher: exponential-moving-average copies of student modules (DINO/iBOT's teacher).

A ``ModuleDict`` so the copies live in the module's state dict (``teacher.encoder.*``) and are
checkpointed, moved between devices and sharded with it; it never gets gradients.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMATeacher(nn.ModuleDict):
    """``teacher[name]`` is an EMA of the student module ``name`` (added with :meth:`follow`)."""

    def follow(self, name: str, student: nn.Module) -> None:
        """Start an EMA copy of ``student`` under ``name`` (idempotent): a frozen deep copy."""
        if name not in self:
            twin = copy.deepcopy(student)
            twin.requires_grad_(False)
            self[name] = twin

    def restart_from(self, students: dict[str, nn.Module]) -> None:
        """Make every copy equal to its student again (e.g. after the student's weights were loaded)."""
        for name, twin in self.items():
            twin.load_state_dict(students[name].state_dict())

    @torch.no_grad()
    def ema_step(self, students: dict[str, nn.Module], momentum: float) -> None:
        """One EMA step, ``teacher = m * teacher + (1 - m) * student``, for every copy at once.

        (Not named ``update``: that is ModuleDict's own method, which adds modules.)
        """
        if len(self) == 0:
            return
        teacher_params: list[torch.Tensor] = []
        student_params: list[torch.Tensor] = []
        for name, twin in self.items():
            for t, s in zip(twin.parameters(), students[name].parameters(), strict=True):
                teacher_params.append(t)
                student_params.append(s.detach())
        torch._foreach_mul_(teacher_params, momentum)
        torch._foreach_add_(teacher_params, student_params, alpha=1.0 - momentum)
