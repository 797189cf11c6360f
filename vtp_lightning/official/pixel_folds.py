"""The official models' ImageNet-normalised pixels folded into this suite's [-1, 1] pixels, exactly.

The official models take and return ImageNet mean/std-normalised pixels; this suite uses [-1, 1].
The change of variables is folded into ``patch_embed`` (input) and ``proj_out`` (output), so a
converted model takes and returns [-1, 1] pixels like every model here. Computed in float64.
"""

from __future__ import annotations

import torch

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def fold_input(weight: torch.Tensor, tensor: torch.Tensor, is_bias: bool) -> torch.Tensor:
    """``patch_embed`` on x01-normalised-by-ImageNet = an equivalent conv on y = 2·x01 − 1.

    (x − μ)/σ with x = (y + 1)/2 is y/(2σ) + (1/2 − μ)/σ: the weights divide by 2σ per input channel,
    the bias gains Σ W · (1/2 − μ)/σ. ``weight`` is the conv's weight (also for its bias), ``tensor``
    the one being folded.
    """
    mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float64)
    std = torch.tensor(IMAGENET_STD, dtype=torch.float64)
    weight = weight.double()
    if not is_bias:
        return (weight / (2 * std).view(1, 3, 1, 1)).to(tensor.dtype)
    shift = (weight * ((0.5 - mean) / std).view(1, 3, 1, 1)).sum(dim=(1, 2, 3))
    return (tensor.double() + shift).to(tensor.dtype)


def fold_output(tensor: torch.Tensor, patch: int) -> torch.Tensor:
    """``proj_out`` made to emit y = 2(σ·x + μ) − 1 for the ImageNet-normalised x it was trained to emit.

    PixelShuffle reads output channel k as colour k // p²: that channel is scaled by 2σ_c and its bias
    shifted by 2μ_c − 1.
    """
    colour = torch.arange(tensor.shape[0]) // (patch * patch)
    std = torch.tensor(IMAGENET_STD, dtype=torch.float64)[colour]
    mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float64)[colour]
    if tensor.ndim > 1:  # weight (3p², D, 1, 1)
        return (tensor.double() * (2 * std).view(-1, 1, 1, 1)).to(tensor.dtype)
    return (tensor.double() * 2 * std + 2 * mean - 1).to(tensor.dtype)
