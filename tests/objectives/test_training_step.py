"""The training step is one function: Lightning's fit and the bench's step compute the same update, and
the after-step services (EMA teacher, then the mixins' hooks such as the logit-scale clamp) run in both."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
from quiet_fit import fit_quietly

from vtp_lightning.objectives import TokenizerModule
from vtp_lightning.objectives.training_step import objective_losses, train_step
from vtp_lightning.tokenizer import AETokenizer, CLIPAETokenizer

pytestmark = pytest.mark.filterwarnings("ignore:perceptual loss off")

LN_100 = math.log(100.0)


def _overshooting_clip(make_tokenizer: Callable[..., TokenizerModule]) -> TokenizerModule:
    """CLIP + AE whose log temperature starts above its clamp (ln 100), so the clamp must act."""
    return make_tokenizer(CLIPAETokenizer, clip_logit_scale_init=6.0, clip_logit_scale_max=LN_100)


def test_the_losses_are_the_weighted_sum_of_each_enabled_objective(
    make_tokenizer: Callable[..., TokenizerModule], make_batch: Callable[..., dict[str, torch.Tensor]]
) -> None:
    model = make_tokenizer(CLIPAETokenizer, clip_weight=0.5, rec_weight=0.25)
    losses = objective_losses(model, make_batch())
    per = losses.per_objective
    assert set(per) == {"clip", "rec"}
    torch.testing.assert_close(losses.total.detach(), 0.5 * per["clip"] + 0.25 * per["rec"])
    assert losses.logs["loss_clip"] is per["clip"] and "clip_logit_scale" in losses.logs
    assert model.step_cache == {}  # nothing of this step survives it


def test_the_bench_step_clamps_the_logit_scale_after_the_optimiser(
    make_tokenizer: Callable[..., TokenizerModule], make_batch: Callable[..., dict[str, torch.Tensor]]
) -> None:
    model = _overshooting_clip(make_tokenizer)
    train_step(model, make_batch(), model.configure_optimizers()["optimizer"])
    assert model.logit_scale.item() == torch.tensor(LN_100).item()


@pytest.mark.integration
def test_a_lightning_step_clamps_the_logit_scale_after_the_optimiser(
    make_tokenizer: Callable[..., TokenizerModule], make_batch: Callable[..., dict[str, torch.Tensor]]
) -> None:
    model = _overshooting_clip(make_tokenizer)
    fit_quietly(model, [make_batch()])
    assert model.logit_scale.item() == torch.tensor(LN_100).item()


def test_after_step_hooks_run_after_the_teacher_update_in_registration_order(
    make_tokenizer: Callable[..., TokenizerModule],
) -> None:
    model = make_tokenizer(AETokenizer)
    calls: list[str] = []
    model.update_teacher = lambda: calls.append("teacher")
    model.add_after_optimizer_step(lambda: calls.append("first"))
    model.add_after_optimizer_step(lambda: calls.append("second"))
    model.after_optimizer_step()
    assert calls == ["teacher", "first", "second"]


@pytest.mark.integration
def test_lightning_and_the_bench_step_give_bit_identical_weights(
    make_tokenizer: Callable[..., TokenizerModule], make_batch: Callable[..., dict[str, torch.Tensor]]
) -> None:
    """One deterministic step (no stochastic depth, no sampled rows) both ways, from the same weights."""
    batch = make_batch()
    in_lightning, by_hand = _overshooting_clip(make_tokenizer), _overshooting_clip(make_tokenizer)
    fit_quietly(in_lightning, [batch])
    train_step(by_hand, batch, by_hand.configure_optimizers()["optimizer"])
    ours, theirs = in_lightning.state_dict(), by_hand.state_dict()
    assert ours.keys() == theirs.keys()
    assert [k for k in ours if not torch.equal(ours[k], theirs[k])] == []
    untrained = _overshooting_clip(make_tokenizer).state_dict()
    trained = [n for n, p in in_lightning.named_parameters() if p.requires_grad and n.startswith("encoder.")]
    assert trained and [k for k in trained if torch.equal(ours[k], untrained[k])] == []  # it did step
