"""MIMMixin: iBOT masked image modeling, or a pixel-target variant that needs no teacher."""

from __future__ import annotations

from typing import Any, Literal

import torch.nn.functional as F
from einops import rearrange
from torch import nn

from vtp_lightning.errors import ConfigError
from vtp_lightning.losses.ibot import IBOTPatchLoss
from vtp_lightning.losses.teacher_targets import make_teacher_targets, target_entropies
from vtp_lightning.objectives.objective import ObjectiveOutput
from vtp_lightning.objectives.ssl_views import SSLViewsMixin, masked_patch_tokens


class MIMMixin(SSLViewsMixin):
    """Masked patches (replaced by the learned mask token) predict the teacher's patch prototypes.

    Args:
        mim_weight: weight of the MIM loss (λ_ssl); 0 switches it off.
        mim_target: ``teacher`` (iBOT: EMA teacher prototypes on the unmasked view) or ``pixel``
            (predict the masked patches' normalised pixels with a linear head, L1; no teacher needed).
    """

    def __init__(
        self, *, mim_weight: float = 1.0, mim_target: Literal["teacher", "pixel"] = "teacher", **kwargs: Any
    ):
        super().__init__(**kwargs)
        self.mim_target = mim_target
        self.add_objective("mim", mim_weight, self._mim_objective)
        self.ibot_loss_fn = IBOTPatchLoss()
        # The encoder's mask token is frozen unless a masked-modeling objective trains it.
        self.encoder.mask_token.requires_grad_(mim_weight > 0)
        if mim_weight <= 0:
            return
        if mim_target == "teacher":
            self.require_ssl_head("masked_patches")
            o = self.ssl_options
            self.ibot_targets = make_teacher_targets(
                o["teacher_targets"], o["num_prototypes"], o["center_momentum"]
            )
        elif mim_target == "pixel":
            p = self.encoder_config.patch_size
            self.mim_pixel_head = nn.Linear(self.encoder.width, 3 * p * p)
        else:
            raise ConfigError(f"unknown mim_target {mim_target!r}; use 'teacher' or 'pixel'")

    def _mim_objective(self, batch: dict[str, Any]) -> ObjectiveOutput:
        if "masks" not in batch:
            raise ConfigError("MIM needs block masks in the batch; set data.mask_probability > 0")
        views = self.ssl_views(batch)
        flat_masks = views["masks"].flatten(1)  # (2n, N)
        num_masked = flat_masks.sum().float()
        if self.mim_target == "pixel":
            student_patches = masked_patch_tokens(views["student_global"], flat_masks)
            p = self.encoder_config.patch_size
            targets = rearrange(views["global_crops"], "b c (h p) (w q) -> b (h w) (p q c)", p=p, q=p)[
                flat_masks
            ]
            if targets.shape[0] == 0:
                return ObjectiveOutput(student_patches.sum() * 0.0, {"mim_masked_patches": num_masked})
            return ObjectiveOutput(
                F.l1_loss(self.mim_pixel_head(student_patches), targets), {"mim_masked_patches": num_masked}
            )
        logits = self.ssl_head_logits(batch)
        teacher_probs = self.ibot_targets(logits["teacher_masked"], self.teacher_temp_now())
        loss = self.ibot_loss_fn(
            logits["student_masked"],
            teacher_probs,
            logits["sample_index"],
            flat_masks.shape[0],
            self.ssl_options["student_temp"],
        )
        logs = {"mim_masked_patches": num_masked}
        if teacher_probs.shape[0] > 0:
            entropy = target_entropies(teacher_probs)
            logs |= {"mim_target_entropy": entropy["sample"], "mim_target_batch_entropy": entropy["batch"]}
        return ObjectiveOutput(loss, logs)
