"""The gFID DiT: shape-preserving, adaLN-Zero initialised, classifier-free-guidance ready."""

from __future__ import annotations

import pytest
import torch

from vtp_lightning.errors import ConfigError
from vtp_lightning.models.dit import DIT_PRESETS, DiT, DiTSpec, dit_spec

SMALL = DiTSpec(depth=2, width=32, heads=2)


def _open_zero_init(model: DiT, std: float = 0.05) -> DiT:
    """Give the zero-initialised adaLN and output layers random weights, as after some training."""
    generator = torch.Generator().manual_seed(1)
    layers = [block.modulation for block in model.blocks] + [model.final.modulation, model.final.linear]
    with torch.no_grad():
        for layer in layers:
            layer.weight.copy_(std * torch.randn(layer.weight.shape, generator=generator))
    return model


@pytest.mark.parametrize(
    ("channels", "height", "width", "patch"),
    [(4, 8, 8, 1), (4, 8, 8, 2), (3, 6, 10, 2), (16, 4, 4, 4), (64, 2, 2, 1)],
)
def test_output_shape_equals_input_shape(channels, height, width, patch):
    spec = DiTSpec(depth=1, width=32, heads=2, patch_size=patch)
    model = _open_zero_init(DiT(channels, num_classes=5, spec=spec, latent_size=(height, width)))
    x = torch.randn(3, channels, height, width)
    out = model(x, torch.rand(3), torch.tensor([0, 4, 5]))
    assert out.shape == x.shape
    assert out.abs().sum() > 0


def test_zero_init_makes_the_initial_output_exactly_zero():
    model = DiT(4, num_classes=3, spec=SMALL)
    out = model(torch.randn(2, 4, 8, 8), torch.rand(2), torch.tensor([0, 2]))
    assert torch.equal(out, torch.zeros_like(out))


def test_a_grid_the_patch_size_does_not_divide_is_a_config_error():
    model = DiT(4, num_classes=3, spec=DiTSpec(depth=1, width=32, heads=2, patch_size=2))
    with pytest.raises(ConfigError, match="patch size"):
        model(torch.randn(1, 4, 5, 4), torch.rand(1), torch.tensor([0]))


def test_dropped_and_unknown_labels_use_the_null_class():
    spec = DiTSpec(depth=1, width=32, heads=2, class_dropout=1.0)
    model = _open_zero_init(DiT(4, num_classes=3, spec=spec))
    x, t = torch.randn(2, 4, 4, 4), torch.rand(2)
    null = torch.full((2,), model.null_class)
    model.eval()
    unconditional = model(x, t, null)
    conditional = model(x, t, torch.tensor([0, 1]))
    assert not torch.allclose(conditional, unconditional)
    torch.testing.assert_close(model(x, t, torch.tensor([-1, -1])), unconditional)
    model.train()  # class_dropout = 1 drops every label in training
    torch.testing.assert_close(model(x, t, torch.tensor([0, 1])), unconditional)


def test_label_dropout_rate_follows_the_spec_and_only_in_training():
    model = DiT(4, num_classes=10, spec=SMALL)
    labels = torch.zeros(20_000, dtype=torch.long)
    dropped = model.drop_labels(labels, torch.Generator().manual_seed(0)) == model.null_class
    assert abs(dropped.float().mean().item() - SMALL.class_dropout) < 0.01
    model = _open_zero_init(model).eval()
    x, t, y = torch.randn(4, 4, 4, 4), torch.rand(4), torch.arange(4)
    torch.testing.assert_close(model(x, t, y), model(x, t, y))


def test_gradients_reach_every_parameter_once_the_zero_init_gates_open():
    """adaLN-Zero opens layer by layer: the output layer, then the gates, then the blocks behind them."""
    torch.manual_seed(0)
    model = DiT(4, num_classes=3, spec=SMALL).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    x, t = torch.randn(8, 4, 4, 4), torch.rand(8)
    labels = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3])  # 3 is the null class: every embedding row is used
    for _ in range(3):
        optimizer.zero_grad()
        (model(x, t, labels) - x).pow(2).mean().backward()
        optimizer.step()
    optimizer.zero_grad()
    (model(x, t, labels) - x).pow(2).mean().backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def test_presets_match_lightningdit_and_unknown_names_are_config_errors():
    assert dit_spec("B") == DiTSpec(depth=12, width=768, heads=12, patch_size=1)
    assert dit_spec("XL") == DiTSpec(depth=28, width=1152, heads=16, patch_size=1)
    assert {"tiny", "B", "XL"} <= set(DIT_PRESETS)
    assert all(spec.class_dropout == 0.1 for spec in DIT_PRESETS.values())
    with pytest.raises(ConfigError, match="tiny"):
        dit_spec("huge")


def test_an_init_generator_fixes_every_initial_weight_whatever_the_global_rng():
    def built(seed: int, global_seed: int) -> DiT:
        torch.manual_seed(global_seed)
        spec = DiTSpec(depth=1, width=32, heads=2)
        return DiT(4, 3, spec, init_generator=torch.Generator().manual_seed(seed))

    first, again, other = built(0, global_seed=1), built(0, global_seed=2), built(1, global_seed=1)
    for (name, a), b in zip(first.state_dict().items(), again.state_dict().values()):
        assert torch.equal(a, b), name
    differing = [
        name
        for (name, a), c in zip(first.state_dict().items(), other.state_dict().values())
        if not torch.equal(a, c)
    ]
    assert "class_embed.weight" in differing and "patch_embed.weight" in differing
