"""The paths a GPU run takes, checked on CPU where possible: bf16 autocast through Lightning's
precision, fused AdamW only for CUDA parameters, mask-free SDPA, and the optional block compile."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from quiet_fit import fit_quietly

from vtp_lightning.models.blocks import Block
from vtp_lightning.tokenizer import VTPTokenizer

pytestmark = pytest.mark.filterwarnings("ignore:perceptual loss off")


@pytest.mark.integration
def test_a_bf16_mixed_step_runs_on_cpu_and_computes_in_bf16(
    make_tokenizer: Callable[..., Any], make_batch: Callable[..., dict[str, torch.Tensor]]
) -> None:
    model = make_tokenizer(VTPTokenizer)
    dtypes: list[torch.dtype] = []
    model.encoder.blocks[0].attn.qkv.register_forward_hook(lambda _m, _i, out: dtypes.append(out.dtype))
    before = model.encoder.patch_embed.weight.detach().clone()
    fit_quietly(model, [make_batch()], precision="bf16-mixed")
    assert torch.bfloat16 in dtypes
    after = model.encoder.patch_embed.weight
    assert after.dtype == torch.float32 and torch.isfinite(after).all()
    assert not torch.equal(before, after)


def test_adamw_is_fused_only_for_cuda_parameters(make_tokenizer: Callable[..., Any]) -> None:
    optimizer = make_tokenizer(VTPTokenizer).configure_optimizers()["optimizer"]
    assert not optimizer.defaults["fused"]


def test_fused_adamw_on_request_on_cpu_takes_the_steps_of_the_per_parameter_loop(
    make_tokenizer: Callable[..., Any],
) -> None:
    """Asked for on a CPU, the fused kernel runs and lands where the loop does, up to float rounding."""
    models = [make_tokenizer(VTPTokenizer, fused_optimizer=fused) for fused in (True, False)]
    optimizers = [m.configure_optimizers()["optimizer"] for m in models]
    assert optimizers[0].defaults["fused"] is True and not optimizers[1].defaults["fused"]
    gradients = torch.Generator().manual_seed(0)
    for _ in range(3):
        for pair in zip(*(m.parameters() for m in models), strict=True):
            grad = torch.randn(pair[0].shape, generator=gradients)
            for p in pair:
                p.grad = grad.clone()
        for optimizer in optimizers:
            optimizer.step()
    start = make_tokenizer(VTPTokenizer).state_dict()
    fused, loop = (dict(m.named_parameters()) for m in models)
    for name, p in fused.items():
        torch.testing.assert_close(p, loop[name], rtol=1e-5, atol=1e-6)
        assert p.requires_grad is False or not torch.equal(p, start[name]), f"{name} did not move"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_adamw_is_fused_on_cuda(make_tokenizer: Callable[..., Any]) -> None:
    optimizer = make_tokenizer(VTPTokenizer).cuda().configure_optimizers()["optimizer"]
    assert optimizer.defaults["fused"] is True


def test_attention_calls_sdpa_without_a_mask_on_last_dim_contiguous_inputs(
    make_tokenizer: Callable[..., Any],
    make_batch: Callable[..., dict[str, torch.Tensor]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No mask, no causal flag, no dropout and stride-1 head dims: what the flash/efficient kernels need."""
    calls: list[tuple[tuple[torch.Tensor, ...], dict[str, Any]]] = []
    sdpa = F.scaled_dot_product_attention

    def recording(*args: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        calls.append((args, kwargs))
        return sdpa(*args, **kwargs)

    monkeypatch.setattr(F, "scaled_dot_product_attention", recording)
    model = make_tokenizer(VTPTokenizer)
    batch = make_batch()
    model.step_cache = {}
    for name in ("dino", "mim", "rec"):
        model.objectives[name].loss(batch)
    assert calls
    for args, kwargs in calls:
        assert len(args) == 3 and not kwargs
        assert all(t.stride(-1) == 1 and t.dim() == 4 for t in args)


def test_compile_blocks_routes_every_block_once_every_module_exists(
    make_tokenizer: Callable[..., Any],
) -> None:
    model = make_tokenizer(VTPTokenizer, compile_blocks=True)
    blocks = [m for m in model.modules() if isinstance(m, Block)]
    assert blocks and not any(isinstance(b.__dict__.get("ffn_branch"), functools.partial) for b in blocks)
    model.configure_model()
    model.configure_model()  # idempotent
    for block in blocks:
        assert block.attention_branch.args == (block,)
        assert block.ffn_branch.args == (block,)
    teacher_blocks = [m for m in model.teacher.modules() if isinstance(m, Block)]
    assert teacher_blocks and all(b.attention_branch.args[0] is b for b in teacher_blocks)
    assert model.decoder.blocks[0].ffn_branch.args[0] is model.decoder.blocks[0]


@pytest.mark.integration
def test_a_bf16_mixed_step_clips_gradients_for_fused_adamw_as_for_the_loop(
    make_tokenizer: Callable[..., Any], make_batch: Callable[..., dict[str, torch.Tensor]]
) -> None:
    """The scale presets' combination (bf16-mixed, fused AdamW, gradient clipping) trains: the fused
    step lands where Lightning's own clipping with the per-parameter loop does, and the clip binds."""
    batch = make_batch()

    def weights_after_one_step(fused: bool, clip: float | None) -> dict[str, torch.Tensor]:
        torch.manual_seed(0)
        model = make_tokenizer(VTPTokenizer, fused_optimizer=fused)
        fit_quietly(model, [batch], precision="bf16-mixed", gradient_clip_val=clip)
        return {k: v.detach().clone() for k, v in model.named_parameters()}

    fused, loop, unclipped = (
        weights_after_one_step(True, 1e-3),
        weights_after_one_step(False, 1e-3),
        weights_after_one_step(False, None),
    )
    for name, value in fused.items():
        torch.testing.assert_close(value, loop[name], rtol=1e-5, atol=1e-6)
    assert any(not torch.equal(value, unclipped[name]) for name, value in loop.items())
