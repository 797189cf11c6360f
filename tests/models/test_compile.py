"""The optional torch.compile of block branches: same outputs, few graphs across crop and batch sizes."""

from __future__ import annotations

import copy

import torch
from torch._dynamo.utils import counters

from vtp_lightning.models.compile import compile_block_branches
from vtp_lightning.models.vit import ViTConfig, ViTEncoder


def _encoder() -> ViTEncoder:
    torch.manual_seed(0)
    return ViTEncoder(ViTConfig(width=32, depth=3, heads=2, patch_size=4, image_size=16))


def test_compiled_branches_give_the_eager_outputs_and_gradients() -> None:
    eager = _encoder().eval()
    compiled = copy.deepcopy(eager)
    assert compile_block_branches(compiled, backend="eager") == 3
    images = torch.randn(3, 3, 16, 16)
    out_e, out_c = eager(images), compiled(images)
    torch.testing.assert_close(out_c["patch"], out_e["patch"])
    out_e["cls"].sum().backward()
    out_c["cls"].sum().backward()
    torch.testing.assert_close(compiled.patch_embed.weight.grad, eager.patch_embed.weight.grad)


def test_crop_and_batch_sizes_reuse_one_graph_per_branch_and_grad_mode() -> None:
    torch._dynamo.reset()
    counters.clear()
    encoder = _encoder().train()
    compile_block_branches(encoder, backend="eager")
    # Global and local crop sizes, several batch sizes, stochastic depth choosing varying row counts
    # (at least 2 kept rows: a single row is specialised by dynamo and would add a graph).
    for size, batch in [(16, 8), (8, 8), (12, 5), (16, 6), (8, 4), (12, 7)]:
        encoder(torch.randn(batch, 3, size, size), drop_path_rate=0.4)["cls"].sum().backward()
    with torch.no_grad():  # the EMA teacher's passes
        for size in (16, 8):
            encoder(torch.randn(4, 3, size, size))
    # attention and FFN, each once with gradients and once without.
    assert counters["stats"]["unique_graphs"] == 4


def test_a_deep_copy_of_a_compiled_encoder_runs_its_own_weights() -> None:
    encoder = _encoder().eval()
    compile_block_branches(encoder, backend="eager")
    twin = copy.deepcopy(encoder)
    with torch.no_grad():
        for p in twin.parameters():
            p.mul_(0.5)
    images = torch.randn(2, 3, 16, 16)
    assert twin.blocks[0].attention_branch.args[0] is twin.blocks[0]
    assert not torch.allclose(twin(images)["patch"], encoder(images)["patch"])


def test_scored_rows_last_block_adds_one_ffn_graph_per_grad_mode_and_matches_eager() -> None:
    torch._dynamo.reset()
    counters.clear()
    eager = _encoder().train()
    compiled = copy.deepcopy(eager)
    compile_block_branches(compiled, backend="eager")
    for batch, share in [(6, 0.3), (4, 0.5), (7, 0.2)]:  # the number of scored rows varies each step
        images = torch.randn(batch, 3, 16, 16)
        rows = torch.rand(batch, 16) < share
        out_c = compiled(images, patch_rows=rows)
        torch.testing.assert_close(out_c["patch_rows"], eager(images, patch_rows=rows)["patch_rows"])
        out_c["cls"].sum().backward()
    with torch.no_grad():  # the teacher's pass
        compiled(torch.randn(4, 3, 16, 16), patch_rows=torch.rand(4, 16) < 0.3)
    # attention with and without gradients; the FFN on (B, T, D) and on (M, D) rows, each in both modes
    assert counters["stats"]["unique_graphs"] == 6
