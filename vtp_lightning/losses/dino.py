"""DINO self-distillation loss on CLS prototypes."""

from __future__ import annotations

import torch
from torch import nn


class DINOLoss(nn.Module):
    """Cross-entropy between teacher targets and student predictions over every (teacher, student) view pair.

    Teacher targets exist for the 2 global views; each is matched with every student view except the
    same global view (so the two global views swap targets), and with every local view.
    """

    def forward(
        self, student_logits: list[torch.Tensor], teacher_probs: list[torch.Tensor], student_temp: float
    ) -> torch.Tensor:
        """
        Args:
            student_logits: per view ``(n, K)``; the first ``len(teacher_probs)`` are the global views.
            teacher_probs: per global view ``(n, K)``, already centred/sharpened and summing to 1.
            student_temp: student softmax temperature.
        """
        log_probs = [torch.log_softmax(s.float() / student_temp, dim=-1) for s in student_logits]
        total, pairs = 0.0, 0
        for t_idx, targets in enumerate(teacher_probs):
            for s_idx, lp in enumerate(log_probs):
                if s_idx == t_idx:
                    continue
                total = total + (-(targets * lp).sum(dim=-1)).mean()
                pairs += 1
        return total / max(pairs, 1)
