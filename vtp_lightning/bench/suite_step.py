"""This suite's full training step, and the unshared reference the bench compares it with by default.

The step is what ``TokenizerModule.training_step`` plus Lightning's optimiser step run: every enabled
objective's weighted loss (CLIP, DINO + KoLeo, iBOT, reconstruction), backward, AdamW with the
module's own parameter groups, then the EMA teacher update.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from vtp_lightning.bench.sizes import BenchSize
from vtp_lightning.objectives.ssl_views import masked_patch_tokens
from vtp_lightning.tokenizer import VTPTokenizer


class UnsharedVTPTokenizer(VTPTokenizer):
    """The same model computed the straightforward way: no work shared between objectives.

    CLIP and reconstruction each run their own encoder pass over the batch, the DINO head is called
    once per input (student global CLS, local CLS, masked patches; teacher CLS, patches), and every
    token goes through every layer (``build_suite_model`` switches off the live-token text tower and
    the scored-tokens last block).
    """

    def encode_cached(self, key: Any, images: torch.Tensor, **kwargs: Any) -> dict[str, Any]:
        self.step_cache.pop((key, float(kwargs.get("drop_path_rate", 0.0)), False, False), None)
        return super().encode_cached(key, images, **kwargs)

    def ssl_head_logits(self, batch: dict[str, Any]) -> dict[str, Any]:
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
    objectives = [o for o in model.objectives.values() if o.enabled]

    def step() -> dict[str, float]:
        model.step_cache = {}
        outputs = {o.name: o.loss(batch).loss for o in objectives}
        total = sum(o.weight * outputs[o.name] for o in objectives)
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()
        model.clamp_logit_scale()
        model.update_teacher()
        model.step_cache = {}
        return {name: float(v.detach()) for name, v in outputs.items()}

    return step
