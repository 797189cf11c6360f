"""SelfDistillationMixin: DINO on CLS prototypes, with the KoLeo regulariser."""

from __future__ import annotations

from typing import Any

import torch

from vtp_lightning.losses.dino import DINOLoss
from vtp_lightning.losses.koleo import KoLeoLoss
from vtp_lightning.losses.teacher_targets import make_teacher_targets, target_entropies
from vtp_lightning.objectives.objective import ObjectiveOutput
from vtp_lightning.objectives.ssl_views import SSLViewsMixin


class SelfDistillationMixin(SSLViewsMixin):
    """DINO self-distillation: student views predict the EMA teacher's global-view prototypes.

    Args:
        dino_weight: weight of the DINO loss (λ_ssl); 0 switches it off.
        koleo_weight: weight of KoLeo on the student's global CLS features (DINOv2: 0.1). As in DINOv2
            the term is summed over the two global crops (each crop's batch is one KoLeo estimate).
    """

    def __init__(self, *, dino_weight: float = 1.0, koleo_weight: float = 0.1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_objective("dino", dino_weight, self._dino_objective)
        self.add_objective("koleo", koleo_weight if dino_weight > 0 else 0.0, self._koleo_objective)
        self.dino_loss_fn = DINOLoss()
        self.koleo_loss_fn = KoLeoLoss()
        if dino_weight > 0:
            self.require_ssl_head("cls")
            o = self.ssl_options
            self.dino_targets = make_teacher_targets(
                o["teacher_targets"], o["num_prototypes"], o["center_momentum"]
            )

    def _dino_objective(self, batch: dict[str, Any]) -> ObjectiveOutput:
        views = self.ssl_views(batch)
        logits = self.ssl_head_logits(batch)
        teacher_temp = self.teacher_temp_now()
        targets = self.dino_targets(logits["teacher_cls"], teacher_temp)
        teacher_probs = targets.chunk(2)
        student_logits = list(logits["student_global_cls"].chunk(2))
        local = views["student_local"]
        if local is not None:
            student_logits += list(logits["student_local_cls"].chunk(local["num_views"]))
        loss = self.dino_loss_fn(student_logits, list(teacher_probs), self.ssl_options["student_temp"])
        entropy = target_entropies(targets)
        return ObjectiveOutput(
            loss,
            {
                "teacher_temp": torch.tensor(teacher_temp),
                "dino_target_entropy": entropy["sample"],
                "dino_target_batch_entropy": entropy["batch"],
            },
        )

    def _koleo_objective(self, batch: dict[str, Any]) -> ObjectiveOutput:
        views = self.ssl_views(batch)
        per_crop = [self.koleo_loss_fn(c) for c in views["student_global"]["cls"].chunk(2)]
        return ObjectiveOutput(torch.stack(per_crop).sum())
