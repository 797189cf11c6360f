"""Rectified-flow maths for the gFID DiT, in the VTP convention: t = 0 is noise, t = 1 is data.

    z_t = (1 - t) * eps + t * z        velocity  v = dz_t/dt = z - eps

Training regresses ``v`` with MSE at logit-normal times; sampling integrates ``dz/dt = v(z, t)`` with
Euler steps from noise (t = 0) to data (t = 1) on an optionally shifted time grid.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

VelocityFn = Callable[[Tensor, Tensor], Tensor]
"""``velocity(z_t, t)`` with ``z_t (B, ...)`` and ``t (B,)``."""


def _per_sample(t: Tensor, like: Tensor) -> Tensor:
    return t.reshape(-1, *([1] * (like.dim() - 1))).to(like.dtype)


def interpolate(data: Tensor, noise: Tensor, t: Tensor) -> Tensor:
    """The point ``z_t = (1 - t) * noise + t * data`` on each sample's straight noise-to-data path."""
    t = _per_sample(t, data)
    return (1 - t) * noise + t * data


def velocity_target(data: Tensor, noise: Tensor) -> Tensor:
    """What the network regresses: the constant velocity ``data - noise`` of the straight path."""
    return data - noise


def logit_normal_times(
    n: int,
    mean: float = 0.0,
    std: float = 1.0,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """``t = sigmoid(N(mean, std))``: training times concentrated mid-path, where velocity is hardest."""
    normal = torch.randn(n, generator=generator, device=device)
    return torch.sigmoid(mean + std * normal)


def shift_times(t: Tensor, shift: float) -> Tensor:
    """SD3-style timestep shift, written for t = 0 at noise: ``t' = t / (t + shift * (1 - t))``.

    In SD3's noise-level convention (sigma = 1 - t) this is ``sigma' = shift*sigma / (1 + (shift-1)*sigma)``.
    ``shift = 1`` is the identity; ``shift > 1`` pulls every interior time toward the noise end, so a
    uniform grid spends more of its steps near noise (useful for high-dimensional latents). Both
    endpoints are fixed.
    """
    if shift <= 0:
        raise ValueError(f"timestep shift must be positive, got {shift}")
    return t / (t + shift * (1 - t))


def time_grid(steps: int, shift: float = 1.0, device: torch.device | str | None = None) -> Tensor:
    """``steps + 1`` increasing times from 0 (noise) to 1 (data), shifted by :func:`shift_times`."""
    if steps < 1:
        raise ValueError(f"the sampler needs at least one step, got {steps}")
    uniform = torch.linspace(0.0, 1.0, steps + 1, dtype=torch.float64)
    return shift_times(uniform, shift).to(device=device, dtype=torch.float32)


@torch.no_grad()
def euler_sample(velocity: VelocityFn, noise: Tensor, steps: int, shift: float = 1.0) -> Tensor:
    """Integrate ``dz/dt = velocity(z, t)`` from ``z_0 = noise`` to t = 1 with explicit Euler steps.

    The velocity is never evaluated at t = 1, so a field that divides by ``1 - t`` is safe.
    """
    grid = time_grid(steps, shift, device=noise.device)
    z = noise
    for t_now, t_next in zip(grid[:-1], grid[1:]):
        t_batch = t_now.expand(z.shape[0])
        z = z + (t_next - t_now).to(z.dtype) * velocity(z, t_batch)
    return z


def guided_velocity(
    model: Callable[[Tensor, Tensor, Tensor], Tensor],
    labels: Tensor,
    null_label: int,
    cfg_scale: float = 1.0,
) -> VelocityFn:
    """The class-conditional velocity, with classifier-free guidance when ``cfg_scale != 1``.

    Guidance runs the conditional and null-class passes as one doubled batch and returns
    ``v_null + cfg_scale * (v_cond - v_null)``; ``cfg_scale = 1`` is a single conditional pass.
    """
    if cfg_scale == 1.0:
        return lambda z, t: model(z, t, labels)
    null = torch.full_like(labels, null_label)

    def velocity(z: Tensor, t: Tensor) -> Tensor:
        v_cond, v_null = model(torch.cat((z, z)), torch.cat((t, t)), torch.cat((labels, null))).chunk(2)
        return v_null + cfg_scale * (v_cond - v_null)

    return velocity
