"""The EMA teacher service of ``TokenizerModule``: exact copy at start, no gradients, cosine momentum,
and one update per optimiser step (not per batch)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest
import torch
from quiet_fit import fit_quietly

from vtp_lightning.objectives import TokenizerModule
from vtp_lightning.tokenizer import AETokenizer, DINOAETokenizer, SSLAETokenizer, VTPTokenizer

pytestmark = pytest.mark.filterwarnings("ignore:perceptual loss off")


def _cosine_momentum(start: float, end: float, progress: float) -> float:
    """DINO's schedule, written independently: start at progress 0, end at progress 1."""
    return end - (end - start) * (1 + math.cos(math.pi * progress)) / 2


def _teacher_params(model: TokenizerModule) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.teacher.named_parameters()}


def _student_twins(model: TokenizerModule) -> dict[str, torch.Tensor]:
    """The student parameter behind every teacher parameter name."""
    return {
        f"{name}.{k}": v.detach().clone()
        for name in model.teacher
        for k, v in getattr(model, name).named_parameters()
    }


@pytest.mark.parametrize("cls", [DINOAETokenizer, SSLAETokenizer, VTPTokenizer])
def test_teacher_starts_as_an_exact_copy_of_encoder_and_head_without_gradients(
    cls: type[TokenizerModule], make_tokenizer: Callable[..., TokenizerModule]
) -> None:
    model = make_tokenizer(cls)
    assert set(model.teacher) == {"encoder", "ssl_head"}
    for name, twin in model.teacher.items():
        student = getattr(model, name)
        assert twin is not student
        for (k, t), (_, s) in zip(twin.state_dict().items(), student.state_dict().items(), strict=True):
            assert torch.equal(t, s), f"teacher.{name}.{k} differs from the student at start"
        assert not any(p.requires_grad for p in twin.parameters())


def test_a_tokenizer_without_self_distillation_has_no_teacher(make_tokenizer: Callable[..., Any]) -> None:
    model = make_tokenizer(AETokenizer)
    assert len(model.teacher) == 0
    model.update_teacher()  # a no-op, not an error


def test_teacher_parameters_are_not_given_to_the_optimizer(make_tokenizer: Callable[..., Any]) -> None:
    model = make_tokenizer(DINOAETokenizer)
    optimised = {
        id(p) for group in model.configure_optimizers()["optimizer"].param_groups for p in group["params"]
    }
    assert not optimised & {id(p) for p in model.teacher.parameters()}
    assert {id(p) for p in model.encoder.parameters() if p.requires_grad} <= optimised


@pytest.mark.parametrize("progress", [0.0, 0.25, 0.5, 1.0])
def test_update_teacher_is_an_ema_with_the_scheduled_momentum(
    progress: float, make_tokenizer: Callable[..., TokenizerModule], monkeypatch: pytest.MonkeyPatch
) -> None:
    model = make_tokenizer(DINOAETokenizer, teacher_momentum=0.8, teacher_momentum_end=1.0)
    monkeypatch.setattr(DINOAETokenizer, "progress", property(lambda self: progress))
    with torch.no_grad():  # move the student away from the teacher
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p))
    before, student = _teacher_params(model), _student_twins(model)
    m = _cosine_momentum(0.8, 1.0, progress)
    assert model.teacher_momentum_now() == pytest.approx(m)

    model.update_teacher()

    after = _teacher_params(model)
    for k in before:
        torch.testing.assert_close(after[k], m * before[k] + (1 - m) * student[k])
    if progress == 1.0:  # momentum 1 freezes the teacher
        assert all(torch.equal(after[k], before[k]) for k in before)


class _Batches(torch.utils.data.Dataset):
    def __init__(self, make_batch: Callable[..., dict[str, torch.Tensor]], count: int) -> None:
        self.batches = [make_batch(seed=i) for i in range(count)]

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return self.batches[i]


@pytest.mark.integration
def test_teacher_is_updated_once_per_optimizer_step_with_gradient_accumulation(
    make_tokenizer: Callable[..., TokenizerModule], make_batch: Callable[..., dict[str, torch.Tensor]]
) -> None:
    start, end, max_steps = 0.9, 1.0, 2
    model = make_tokenizer(DINOAETokenizer, teacher_momentum=start, teacher_momentum_end=end)
    original = model.update_teacher
    seen_steps: list[int] = []
    batches_seen: list[int] = []

    def checked_update() -> None:
        # Runs right after the optimiser step: verify the EMA against the momentum at this step.
        before, student = _teacher_params(model), _student_twins(model)
        m = _cosine_momentum(start, end, model.global_step / max_steps)
        original()
        after = _teacher_params(model)
        for k in before:
            torch.testing.assert_close(after[k], m * before[k] + (1 - m) * student[k])
        seen_steps.append(model.global_step)

    model.update_teacher = checked_update  # what optimizer_step calls
    model.on_train_batch_start = lambda batch, batch_idx: batches_seen.append(batch_idx)
    trainer = fit_quietly(model, _Batches(make_batch, 4), max_steps=max_steps, accumulate_grad_batches=2)

    assert batches_seen == [0, 1, 2, 3]
    # 4 batches, 2 optimiser steps, 2 teacher updates; each uses the momentum of the iteration whose
    # step it follows (global_step counts that step as done only once optimizer_step returns).
    assert seen_steps == [0, 1]
    assert trainer.global_step == max_steps
    assert all(p.grad is None for p in model.teacher.parameters())
    assert any(p.grad is not None for p in model.encoder.parameters())
