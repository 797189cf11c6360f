"""The DINO head runs once per side per step, and the losses equal the per-input head calls."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch

from vtp_lightning.losses.dino import DINOLoss
from vtp_lightning.losses.ibot import IBOTPatchLoss
from vtp_lightning.losses.teacher_targets import make_teacher_targets
from vtp_lightning.tokenizer import DINOAETokenizer, MIMAETokenizer, SSLAETokenizer


def _per_input_losses(model: Any, views: dict[str, Any], kinds: str) -> dict[str, torch.Tensor]:
    """DINO and iBOT losses the straightforward way: one head call per input, fresh teacher targets."""
    o = model.ssl_options
    student, teacher = model.ssl_head, model.teacher["ssl_head"]
    temp = model.teacher_temp_now()
    out = {}
    with torch.no_grad():
        teacher_cls = teacher(views["teacher_global"]["cls"])
    if "dino" in kinds:
        targets = make_teacher_targets(o["teacher_targets"], o["num_prototypes"], o["center_momentum"])
        probs = targets(teacher_cls, temp).chunk(2)
        local = views["student_local"]
        student_logits = list(student(views["student_global"]["cls"]).chunk(2))
        student_logits += list(student(local["cls"]).chunk(local["num_views"]))
        out["dino"] = DINOLoss()(student_logits, list(probs), o["student_temp"])
    if "mim" in kinds:
        flat = views["masks"].flatten(1)
        with torch.no_grad():
            teacher_patches = teacher(views["teacher_global"]["patch"][flat])
        targets = make_teacher_targets(o["teacher_targets"], o["num_prototypes"], o["center_momentum"])
        out["mim"] = IBOTPatchLoss()(
            student(views["student_global"]["patch"][flat]),
            targets(teacher_patches, temp),
            flat.nonzero()[:, 0],
            flat.shape[0],
            o["student_temp"],
        )
    return out


@pytest.mark.parametrize("teacher_targets", ["centering", "sinkhorn"])
@pytest.mark.parametrize(
    ("cls", "kinds"), [(SSLAETokenizer, "dino+mim"), (DINOAETokenizer, "dino"), (MIMAETokenizer, "mim")]
)
def test_fused_head_losses_and_gradients_equal_per_input_calls(
    make_tokenizer: Callable[..., Any],
    make_batch: Callable[..., dict[str, torch.Tensor]],
    cls: type,
    kinds: str,
    teacher_targets: str,
) -> None:
    model = make_tokenizer(cls, ssl_teacher_targets=teacher_targets)
    batch = make_batch(batch_size=4, ssl_rows=3, num_local=2)
    model.step_cache = {}
    fused = {name: model.objectives[name].loss(batch).loss for name in kinds.split("+")}
    views = model.step_cache[("ssl_views",)]
    plain = _per_input_losses(model, views, kinds)
    for name in fused:
        torch.testing.assert_close(fused[name], plain[name], rtol=1e-5, atol=1e-6)
    fused_grad = torch.autograd.grad(sum(fused.values()), model.ssl_head.prototypes, retain_graph=True)[0]
    plain_grad = torch.autograd.grad(sum(plain.values()), model.ssl_head.prototypes)[0]
    torch.testing.assert_close(fused_grad, plain_grad, rtol=1e-4, atol=1e-7)


def test_each_head_runs_once_per_step_over_all_it_scores(
    make_tokenizer: Callable[..., Any], make_batch: Callable[..., dict[str, torch.Tensor]]
) -> None:
    model = make_tokenizer(SSLAETokenizer)
    batch = make_batch(batch_size=4, ssl_rows=3, num_local=2)
    rows: dict[str, list[int]] = {"student": [], "teacher": []}
    model.ssl_head.register_forward_hook(lambda _m, i, _o: rows["student"].append(i[0].shape[0]))
    model.teacher["ssl_head"].register_forward_hook(lambda _m, i, _o: rows["teacher"].append(i[0].shape[0]))
    model.step_cache = {}
    for name in ("dino", "mim"):
        model.objectives[name].loss(batch)
    masked = int(batch["masks"].sum())
    # Student: 2 x 3 global CLS + 2 x 3 local CLS + masked patches; teacher: 2 x 3 global CLS + masked.
    assert rows == {"student": [6 + 6 + masked], "teacher": [6 + masked]}
