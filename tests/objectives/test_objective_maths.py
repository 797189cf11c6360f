"""Three details where the losses must follow open_clip and DINOv2 exactly, each checked against an
independent computation: the CLIP logit-scale clamp, Sinkhorn-Knopp at low temperature, and KoLeo's
sum over the two global crops."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
from quiet_fit import fit_quietly

from vtp_lightning.losses import SinkhornKnopp
from vtp_lightning.objectives import TokenizerModule
from vtp_lightning.tokenizer import CLIPAETokenizer, DINOAETokenizer

LN_100 = math.log(100.0)


# ------------------------------------------------------------------------------ CLIP logit scale
def test_a_logit_scale_above_ln_100_still_gets_a_gradient(
    make_tokenizer: Callable[..., TokenizerModule], make_batch: Callable[..., dict]
) -> None:
    model = make_tokenizer(CLIPAETokenizer)
    with torch.no_grad():
        model.logit_scale.fill_(LN_100 + 0.5)
    model._clip_objective(make_batch()).loss.backward()
    assert model.logit_scale.grad is not None and model.logit_scale.grad.abs().item() > 0


@pytest.mark.integration
@pytest.mark.parametrize(("start", "clamped_to"), [(LN_100 + 0.5, LN_100), (-0.5, 0.0)])
def test_the_logit_scale_parameter_is_clamped_to_0_and_ln_100_after_the_optimiser_step(
    start: float,
    clamped_to: float,
    make_tokenizer: Callable[..., TokenizerModule],
    make_batch: Callable[..., dict],
) -> None:
    # lr 1e-3: one AdamW step moves the parameter by at most about 1e-3, far less than 0.5
    model = make_tokenizer(CLIPAETokenizer, lr=1e-3, warmup_fraction=0.0)
    with torch.no_grad():
        model.logit_scale.fill_(start)
    fit_quietly(model, [make_batch()])
    assert model.logit_scale.item() == pytest.approx(clamped_to, abs=1e-7)


@pytest.mark.integration
def test_a_logit_scale_inside_the_range_moves_freely(
    make_tokenizer: Callable[..., TokenizerModule], make_batch: Callable[..., dict]
) -> None:
    model = make_tokenizer(CLIPAETokenizer, lr=1e-3, warmup_fraction=0.0)
    start = math.log(1 / 0.07)
    with torch.no_grad():
        model.logit_scale.fill_(start)
    fit_quietly(model, [make_batch()])
    moved = abs(model.logit_scale.item() - start)
    assert 1e-4 < moved <= 1.01e-3  # one Adam step: |update| = lr * |m / sqrt(v)| = lr at step 1


# ------------------------------------------------------------------------------ Sinkhorn-Knopp
def _sinkhorn_float64(logits: torch.Tensor, temperature: float, iterations: int) -> torch.Tensor:
    """DINOv2's Sinkhorn-Knopp written out in float64 (whose range holds exp(150) comfortably)."""
    q = torch.exp(logits.double() / temperature).T  # (K, B)
    q = q / q.sum()
    k, b = q.shape
    for _ in range(iterations):
        q = q / q.sum(dim=1, keepdim=True) / k
        q = q / q.sum(dim=0, keepdim=True) / b
    return (q * b).T


@pytest.mark.parametrize("spread", [1.0, 3.0], ids=["cosine-logits", "logits-spanning-6"])
def test_sinkhorn_at_teacher_temperature_0_02_matches_a_float64_computation(spread: float) -> None:
    g = torch.Generator().manual_seed(0)
    features = torch.nn.functional.normalize(torch.randn(64, 32, generator=g), dim=-1)
    prototypes = torch.nn.functional.normalize(torch.randn(32, 256, generator=g), dim=0)
    logits = (features @ prototypes) * spread + torch.randn(1, 256, generator=g) * 0.3 * spread
    targets = SinkhornKnopp(256, iterations=3)(logits, 0.02)
    expected = _sinkhorn_float64(logits, 0.02, 3)
    assert targets.dtype == torch.float32
    assert (targets.double() - expected).abs().max().item() < 1e-6


# ------------------------------------------------------------------------------------- KoLeo
def _koleo_by_hand(features: torch.Tensor) -> float:
    """-mean_i log(min_{j != i} |x_i - x_j|) of L2-normalised rows, with plain loops in float64."""
    rows = [r / r.norm() for r in features.double()]
    nearest = [
        min((rows[i] - rows[j]).norm().item() for j in range(len(rows)) if j != i) for i in range(len(rows))
    ]
    return -sum(math.log(d) for d in nearest) / len(nearest)


def test_koleo_is_summed_over_the_two_global_crops_as_in_dinov2(
    make_tokenizer: Callable[..., TokenizerModule], make_batch: Callable[..., dict]
) -> None:
    model = make_tokenizer(DINOAETokenizer)
    batch = make_batch(batch_size=8, ssl_rows=4)
    with torch.no_grad():
        loss = model._koleo_objective(batch).loss
        cls = model.ssl_views(batch)["student_global"]["cls"]  # (2 * rows, width): crop 1 then crop 2
    first, second = cls[:4], cls[4:]
    assert loss.item() == pytest.approx(_koleo_by_hand(first) + _koleo_by_hand(second), rel=1e-5)
