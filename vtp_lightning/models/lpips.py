"""LPIPS perceptual distance (VGG16 variant) with weights from a local file — never random weights.

The file holds torchvision's VGG16 ``features.*`` tensors plus the five LPIPS linear layers
``lin0.weight`` .. ``lin4.weight`` (shape ``(1, C, 1, 1)``). ``scripts/make_lpips_weights.py``
combines the two public files (torchvision's ``vgg16-397923af.pth`` and LPIPS' ``v0.1/vgg.pth``)
into one ``.safetensors``.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import vgg16

from vtp_lightning.errors import WeightsError
from vtp_lightning.models.tensor_file import read_tensor_file

# Cut points after relu1_2, relu2_2, relu3_3, relu4_3, relu5_3 in torchvision's VGG16 ``features``.
_SLICES = ((0, 4), (4, 9), (9, 16), (16, 23), (23, 30))
_CHANNELS = (64, 128, 256, 512, 512)
# LPIPS' input scaling layer (inputs in [-1, 1]).
_SHIFT = (-0.030, -0.088, -0.188)
_SCALE = (0.458, 0.448, 0.450)


class LPIPS(nn.Module):
    """Learned perceptual distance on normalised ``[-1, 1]`` images; frozen, per-sample output ``(B,)``."""

    def __init__(self) -> None:
        super().__init__()
        features = vgg16(weights=None).features
        self.slices = nn.ModuleList(nn.Sequential(*features[a:b]) for a, b in _SLICES)
        self.lins = nn.ModuleList(nn.Conv2d(c, 1, kernel_size=1, bias=False) for c in _CHANNELS)
        self.register_buffer("shift", torch.tensor(_SHIFT).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(_SCALE).view(1, 3, 1, 1))
        self.requires_grad_(False)
        self.eval()

    @classmethod
    def from_file(cls, path: str | Path) -> LPIPS:
        path = Path(path)
        if not path.is_file():
            raise WeightsError(
                f"perceptual weights {path} do not exist; build them with scripts/make_lpips_weights.py "
                "from local VGG16 and LPIPS files, or set rec_perceptual_weights (stage 2: perceptual_weights) "
                "to null for L1 only"
            )
        state = read_tensor_file(path)
        model = cls()
        mapping = {}
        for i, (a, b) in enumerate(_SLICES):
            for j in range(a, b):
                for kind in ("weight", "bias"):
                    key = f"features.{j}.{kind}"
                    if key in state:
                        mapping[f"slices.{i}.{j - a}.{kind}"] = state[key]
        for i in range(len(_CHANNELS)):
            mapping[f"lins.{i}.weight"] = state.get(f"lin{i}.weight", state.get(f"lin{i}.model.1.weight"))
        expected = {k for k in model.state_dict() if not k.startswith(("shift", "scale"))}
        missing = sorted(k for k in expected if mapping.get(k) is None)
        if missing:
            raise WeightsError(
                f"perceptual weights {path} lack {len(missing)} tensors (e.g. {missing[0]}); expected VGG16 "
                "'features.N.weight/bias' and LPIPS 'lin0..lin4.weight'"
            )
        try:
            model.load_state_dict({k: mapping[k] for k in expected}, strict=False)
        except RuntimeError as exc:
            raise WeightsError(f"perceptual weights {path} have the wrong shapes: {exc}") from exc
        return model

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        x = (x - self.shift) / self.scale
        y = (y - self.shift) / self.scale
        total = torch.zeros(x.shape[0], device=x.device, dtype=x.dtype)
        for block, lin in zip(self.slices, self.lins, strict=True):
            x, y = block(x), block(y)
            diff = (F.normalize(x, dim=1, eps=1e-10) - F.normalize(y, dim=1, eps=1e-10)) ** 2
            total = total + lin(diff).mean(dim=(1, 2, 3))
        return total

    def train(self, mode: bool = True) -> LPIPS:
        return super().train(False)  # always frozen, always in eval mode
