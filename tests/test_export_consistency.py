"""from_pretrained and vtp-export believe config.json only where the weights agree with it.

A config saying encoder depth 2 over weights holding 6 blocks used to load the first 2 and compute
something else; int8 weights were cast, NaN weights loaded, heads 0 / patch_size 0 divided by zero.
Each is one CheckpointError naming the key.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import save_file

from vtp_lightning.errors import CheckpointError
from vtp_lightning.export import main as export_main
from vtp_lightning.models.autoencoder import VTPAutoencoder
from vtp_lightning.models.vit import ViTConfig
from vtp_lightning.weights.pretrained import from_pretrained
from vtp_lightning.weights.provenance import ARCH_KEY

# normalized RoPE coordinates store their periods, whose length (head width / 4) records the heads
ENCODER = {
    "width": 32,
    "depth": 6,
    "heads": 2,
    "patch_size": 4,
    "image_size": 16,
    "rope_coords": "normalized",
}
DECODER = {"width": 32, "depth": 1, "heads": 2, "patch_size": 4, "image_size": 16}


def _model() -> VTPAutoencoder:
    torch.manual_seed(0)
    return VTPAutoencoder(ViTConfig(**ENCODER), 8, ViTConfig(**DECODER))


def _export(directory: Path, weights: dict[str, torch.Tensor], encoder: dict[str, Any], **extra: Any) -> Path:
    """An export directory written by hand: config.json with these settings over these tensors."""
    directory.mkdir()
    arch = {"encoder": encoder, "latent_dim": 8, "decoder": DECODER, **extra}
    (directory / "config.json").write_text(json.dumps({"architecture": arch}))
    save_file({k: v.contiguous() for k, v in weights.items()}, str(directory / "model.safetensors"))
    return directory


def test_an_export_whose_config_agrees_with_its_weights_computes_what_the_model_did(tmp_path: Path) -> None:
    model = _model().eval()
    loaded = from_pretrained(_export(tmp_path / "ok", model.state_dict(), ENCODER))
    images = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(1)) * 2 - 1
    torch.testing.assert_close(loaded.encode(images), model.encode(images), rtol=0, atol=0)


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        ({"depth": 2}, r"encoder\.depth = 2 but .* holds 6 encoder blocks"),
        ({"depth": 9}, r"encoder\.depth = 9 but .* holds 6 encoder blocks"),
        ({"depth": -1}, r"encoder\.depth = -1 is not an integer >= 1"),
        ({"heads": 0}, r"encoder\.heads = 0 is not an integer >= 1"),
        ({"patch_size": 0}, r"encoder\.patch_size = 0 is not an integer >= 1"),
        ({"width": 64, "heads": 4}, r"has shape \(1, 1, 32\) in .* but \(1, 1, 64\)"),
        ({"heads": 4}, r"encoder\.rope\.periods has shape"),  # head width 8 instead of 16
    ],
    ids=["fewer-blocks", "more-blocks", "negative-depth", "zero-heads", "zero-patch", "width", "heads"],
)
def test_a_config_that_disagrees_with_the_weights_is_one_error_naming_the_key(
    setting: dict[str, int], expected: str, tmp_path: Path
) -> None:
    directory = _export(tmp_path / "bad", _model().state_dict(), {**ENCODER, **setting})
    with pytest.raises(CheckpointError, match=expected):
        from_pretrained(directory)


def test_a_decoder_the_config_does_not_have_is_refused(tmp_path: Path) -> None:
    directory = _export(tmp_path / "bad", _model().state_dict(), ENCODER, decoder=None)
    with pytest.raises(CheckpointError, match=r"no pixel decoder but .* holds one \(decoder\."):
        from_pretrained(directory)


def test_integer_weights_are_refused_not_cast(tmp_path: Path) -> None:
    weights = _model().state_dict()
    weights["bottleneck.proj.weight"] = (weights["bottleneck.proj.weight"] * 100).to(torch.int8)
    with pytest.raises(CheckpointError, match=r"bottleneck\.proj\.weight as int8, not floating point"):
        from_pretrained(_export(tmp_path / "int8", weights, ENCODER))


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_weights_are_refused(value: float, tmp_path: Path) -> None:
    weights = _model().state_dict()
    weights["encoder.blocks.3.attn.proj.weight"][0, 0] = value
    with pytest.raises(CheckpointError, match=r"non-finite .*encoder\.blocks\.3\.attn\.proj\.weight"):
        from_pretrained(_export(tmp_path / "nan", weights, ENCODER))


def test_vtp_export_checks_the_recorded_architecture_against_the_state_dict(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = _model()
    arch = model.architecture()
    arch["encoder"]["depth"] = 2
    source = tmp_path / "wrong.ckpt"
    torch.save({"state_dict": model.state_dict(), ARCH_KEY: arch}, source)
    assert export_main([str(source), str(tmp_path / "out")]) == 2
    (line,) = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert "encoder.depth = 2" in line and "6 encoder blocks" in line
    assert not (tmp_path / "out").exists()
