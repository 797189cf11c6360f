"""``ssl_scored_tokens_only``: the SSL losses and their gradients are those of the full multi-crop passes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch

from vtp_lightning.tokenizer import DINOAETokenizer, MIMAETokenizer, SSLAETokenizer


@pytest.mark.parametrize(
    ("cls", "names"),
    [(SSLAETokenizer, ("dino", "koleo", "mim")), (DINOAETokenizer, ("dino",)), (MIMAETokenizer, ("mim",))],
)
def test_losses_and_gradients_equal_the_full_passes_under_the_same_stochastic_depth_draws(
    make_tokenizer: Callable[..., Any],
    make_batch: Callable[..., dict[str, torch.Tensor]],
    cls: type,
    names: tuple,
) -> None:
    batch = make_batch(batch_size=4, ssl_rows=3, num_local=2)
    results = []
    for scored_only in (False, True):
        model = make_tokenizer(cls, ssl_scored_tokens_only=scored_only, ssl_drop_path=0.3).train()
        model.step_cache = {}
        torch.manual_seed(7)
        losses = {name: model.objectives[name].loss(batch).loss for name in names if name in model.objectives}
        grads = torch.autograd.grad(
            sum(losses.values()),
            [p for p in model.encoder.parameters() if p.requires_grad],
            allow_unused=True,
        )
        results.append((losses, grads))
    (full, full_grads), (scored, scored_grads) = results
    for name in full:
        torch.testing.assert_close(scored[name], full[name], rtol=1e-5, atol=1e-6)
    for g_full, g_scored in zip(full_grads, scored_grads, strict=True):
        if g_full is None:
            assert g_scored is None
        else:
            torch.testing.assert_close(g_scored, g_full, rtol=1e-4, atol=1e-6)


def test_the_last_blocks_ffn_sees_only_cls_and_masked_patch_rows(
    make_tokenizer: Callable[..., Any], make_batch: Callable[..., dict[str, torch.Tensor]]
) -> None:
    model = make_tokenizer(SSLAETokenizer, ssl_scored_tokens_only=True)
    batch = make_batch(batch_size=4, ssl_rows=3, num_local=2)
    rows: list[int] = []
    model.encoder.blocks[-1].mlp.register_forward_hook(lambda _m, i, _o: rows.append(i[0].shape[0]))
    model.teacher["encoder"].blocks[-1].mlp.register_forward_hook(
        lambda _m, i, _o: rows.append(i[0].shape[0])
    )
    model.step_cache = {}
    model.objectives["dino"].loss(batch)
    model.objectives["mim"].loss(batch)
    crops = 2 * 3
    masked = int(batch["masks"].sum())
    # student globals, student locals (2 views x 3 rows: CLS only), teacher globals
    assert rows == [crops + masked, 2 * 3, crops + masked]
