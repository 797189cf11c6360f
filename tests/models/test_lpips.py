"""LPIPS loads only real weight files (made here) and behaves like a distance."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torchvision.models import vgg16

from vtp_lightning.errors import WeightsError
from vtp_lightning.models.lpips import LPIPS

CHANNELS = (64, 128, 256, 512, 512)


def write_weights(path: Path, with_lins: bool = True) -> Path:
    torch.manual_seed(0)
    tensors = {f"features.{k}": v for k, v in vgg16(weights=None).features.state_dict().items()}
    if with_lins:
        for i, c in enumerate(CHANNELS):
            tensors[f"lin{i}.weight"] = torch.rand(1, c, 1, 1)
    save_file(tensors, str(path))
    return path


def test_lpips_is_zero_for_identical_images_and_grows_with_noise(tmp_path: Path) -> None:
    lpips = LPIPS.from_file(write_weights(tmp_path / "lpips.safetensors"))
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    same = lpips(x, x)
    small = lpips(x, x + 0.05 * torch.randn_like(x))
    large = lpips(x, x + 0.5 * torch.randn_like(x))
    assert torch.allclose(same, torch.zeros(2), atol=1e-6)
    assert (small > 0).all() and (large > small).all()


def test_lpips_stays_frozen_and_in_eval_mode(tmp_path: Path) -> None:
    lpips = LPIPS.from_file(write_weights(tmp_path / "lpips.safetensors"))
    lpips.train()
    assert not lpips.training
    assert not any(p.requires_grad for p in lpips.parameters())


def test_missing_file_and_missing_linear_layers_are_refused_with_a_clear_message(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="do not exist"):
        LPIPS.from_file(tmp_path / "absent.safetensors")
    with pytest.raises(WeightsError, match="lin0"):
        LPIPS.from_file(write_weights(tmp_path / "no_lins.safetensors", with_lins=False))
