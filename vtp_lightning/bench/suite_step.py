"""This suite's full training step, and the unshared reference the bench compares it with by default.

The step is the module's own, :func:`~vtp_lightning.objectives.training_step.train_step`: every
enabled objective's weighted loss (CLIP, DINO + KoLeo, iBOT, reconstruction), backward, AdamW with the
module's own parameter groups, then the after-step services (EMA teacher, logit-scale clamp).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from vtp_lightning.bench.sizes import BenchSize
from vtp_lightning.objectives.ssl_views import masked_patch_tokens
from vtp_lightning.objectives.training_step import train_step
from vtp_lightning.tokenizer import VTPTokenizer


class UnsharedVTPTokenizer(VTPTokenizer):
    """The same model computed the straightforward way: no work shared between objectives.

    CLIP and reconstruction each run their own encoder pass over the batch, the DINO head is called
    once per input (student global CLS, local CLS, masked patches; teacher CLS, patches), and every
    token goes through every layer (``build_suite_model`` switches off the live-token text tower and
    the scored-tokens last block).
    """

    def encode_cached(self, key: Any, images: torch.Tensor, **kwargs: Any) -> dict[str, Any]:
        """Every request runs its own pass: nothing cached for the next objective."""
        return self.encode_pass(images, **kwargs)

    def ssl_head_logits(self, batch: dict[str, Any]) -> dict[str, Any]:
        """One head call per input and side (the shared version stacks them into one call per side)."""
        views = self.ssl_views(batch)
        flat = views["masks"].flatten(1)
        teacher = self.teacher["ssl_head"]
        with torch.no_grad():
            teacher_cls = teacher(views["teacher_global"]["cls"])
            teacher_masked = teacher(masked_patch_tokens(views["teacher_global"], flat))
        return {
            "student_global_cls": self.ssl_head(views["student_global"]["cls"]),
            "student_local_cls": self.ssl_head(views["student_local"]["cls"]),
            "student_masked": self.ssl_head(masked_patch_tokens(views["student_global"], flat)),
            "teacher_cls": teacher_cls,
            "teacher_masked": teacher_masked,
            "sample_index": flat.nonzero()[:, 0],
        }


def build_suite_model(size: BenchSize, unshared: bool = False, compile_blocks: bool = False) -> VTPTokenizer:
    torch.manual_seed(0)
    options = {**size.model, "compile_blocks": compile_blocks}
    if unshared:
        options |= {"clip_text_live_tokens_only": False, "ssl_scored_tokens_only": False}
    model = (UnsharedVTPTokenizer if unshared else VTPTokenizer)(**options)
    model.configure_model()
    return model.train()


def suite_step(model: VTPTokenizer, batch: dict[str, Any]) -> Callable[[], dict[str, float]]:
    """One full optimiser step; returns the unweighted losses."""
    optimizer = model.configure_optimizers()["optimizer"]

    def step() -> dict[str, float]:
        losses = train_step(model, batch, optimizer)
        return {name: float(v) for name, v in losses.per_objective.items()}

    return step
