"""The gFID protocol, scaled down: train a fixed-spec DiT on a frozen tokenizer's latents, then sample.

gFID asks how easy a tokenizer's latent space is to generate from, so everything except the
tokenizer is held fixed and recorded: the :class:`GenerationProtocol`. The pieces compose in a
callback as

    latents, labels = encode(train images and their horizontal flips)   # flips are the caller's job
    normalizer = LatentNormalizer.fit(latents)
    dit, history = train_latent_dit(latents, labels, protocol, normalizer=normalizer)
    images = decode(sample_latents(dit, protocol, normalizer))
    gfid = frechet_distance(features(images), features(held-out real images))

Paper scale (VTP_SPEC): LightningDiT-B for 80 epochs with FID-10k for scaling curves, DiT-XL for
headline numbers, 250 Euler steps, no CFG. No Lightning here.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from vtp_lightning.errors import ConfigError
from vtp_lightning.metrics.rectified_flow import (
    euler_sample,
    guided_velocity,
    interpolate,
    logit_normal_times,
    velocity_target,
)
from vtp_lightning.models.dit import DiT, DiTSpec, dit_spec

SAMPLERS = ("euler",)
"""ODE samplers the protocol knows (recorded in its JSON; Euler as in the paper)."""

ProgressFn = Callable[[int, float], None]
"""Called as ``progress(step, loss)`` after every training step (step counts from 1)."""


@dataclass(frozen=True, eq=False)
class LatentNormalizer:
    """Per-channel mean/std of the training latents.

    VTP's bottleneck leaves the latent scale unregularised (per-channel std ~0.06-0.2), so the DiT
    trains on standardised latents and samples are mapped back before decoding.
    """

    mean: Tensor
    std: Tensor

    @classmethod
    def fit(cls, latents: Tensor, eps: float = 1e-6) -> LatentNormalizer:
        """Statistics over the batch and spatial positions of ``latents (N, C, h, w)`` (float64 sums)."""
        if latents.dim() != 4:
            raise ValueError(f"expected latents (N, C, h, w), got shape {tuple(latents.shape)}")
        values = latents.detach().double().transpose(0, 1).reshape(latents.shape[1], -1)
        std = values.std(dim=1, correction=0).clamp_min(eps)
        return cls(mean=values.mean(dim=1).float().cpu(), std=std.float().cpu())

    def _stats_like(self, z: Tensor) -> tuple[Tensor, Tensor]:
        shape = (-1, *([1] * (z.dim() - 2)))
        return self.mean.to(z).reshape(shape), self.std.to(z).reshape(shape)

    def normalize(self, latents: Tensor) -> Tensor:
        mean, std = self._stats_like(latents)
        return (latents - mean) / std

    def denormalize(self, latents: Tensor) -> Tensor:
        mean, std = self._stats_like(latents)
        return latents * std + mean

    def state_dict(self) -> dict[str, Tensor]:
        """The statistics as plain tensors, for ``torch.save`` next to a gFID result."""
        return {"mean": self.mean.clone(), "std": self.std.clone()}

    @classmethod
    def from_state_dict(cls, state: dict[str, Tensor]) -> LatentNormalizer:
        return cls(mean=state["mean"].clone(), std=state["std"].clone())


@dataclass(frozen=True)
class GenerationProtocol:
    """The fixed gFID spec, recorded with every result. Defaults are the CPU-scale run.

    ``ema_warmup`` uses ``min(ema_decay, (1 + n) / (10 + n))`` after ``n`` updates so that short runs
    get a useful average; at paper scale (~10^5 steps) turn it off and use ``ema_decay = 0.9999``.
    ``timestep_shift`` is not published; 1.0 (no shift) is the default.

    Paired evaluation (common random numbers): every random draw of the protocol — the DiT's
    initial weights, the training batches, noise, times and label dropout, the sampling noise, the
    DiT's training images and the reference images — comes from its own ``torch.Generator`` seeded
    from ``seed``, never from the global RNG. Two tokenizers evaluated with the same seed therefore
    differ only through their latents. ``seed = None`` means "the run's seed": the generation
    callback uses the run's ``seed_everything``, so grid seed ``k`` evaluates every combination with
    protocol seed ``k``; plain function calls use 0.

    ``label_dropout`` is the fraction of training labels replaced by the null class (what
    classifier-free guidance needs); ``cfg_scale`` > 1 samples with guidance.

    Defaults, measured (docs/results/protocol.md): on a CLIP+SSL+AE tokenizer of 100 steps the tiny
    DiT at lr 2e-3 with guidance 3 gives class-conditional samples the fmnist network recognises
    57 % of the time after 500 steps and 84 % after 1000 (lr 1e-3: 30 % and 46 % at 500 and 750;
    the former 2e-4 stayed at chance), so 600 steps is the CPU protocol (about 3 minutes on 2 cores).
    """

    dit: str = "tiny"
    train_steps: int = 600
    batch_size: int = 64
    lr: float = 2e-3
    betas: tuple[float, float] = (0.9, 0.95)
    weight_decay: float = 0.0
    ema_decay: float = 0.9999
    ema_warmup: bool = True
    t_mean: float = 0.0
    t_std: float = 1.0
    label_dropout: float = 0.1
    sampling_steps: int = 16
    sampler: str = "euler"
    timestep_shift: float = 1.0
    cfg_scale: float = 3.0
    num_samples: int = 500
    sample_batch_size: int = 250
    seed: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "betas", tuple(float(b) for b in self.betas))
        dit_spec(self.dit)
        positive = ("train_steps", "batch_size", "sampling_steps", "num_samples", "sample_batch_size")
        for name in positive:
            if getattr(self, name) < 1:
                raise ConfigError(f"GenerationProtocol.{name} must be >= 1, got {getattr(self, name)}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ConfigError(f"GenerationProtocol.ema_decay must lie in [0, 1), got {self.ema_decay}")
        if self.timestep_shift <= 0 or self.t_std <= 0:
            raise ConfigError("GenerationProtocol.timestep_shift and t_std must be positive")
        if not 0.0 <= self.label_dropout < 1.0:
            raise ConfigError(
                f"GenerationProtocol.label_dropout must lie in [0, 1), got {self.label_dropout}"
            )
        if self.sampler not in SAMPLERS:
            raise ConfigError(
                f"GenerationProtocol.sampler {self.sampler!r} is unknown; choose one of {SAMPLERS}"
            )
        if self.cfg_scale < 0:
            raise ConfigError(
                f"GenerationProtocol.cfg_scale must be >= 0 (1 = no guidance), got {self.cfg_scale}"
            )
        if self.seed is not None and self.seed < 0:
            raise ConfigError(f"GenerationProtocol.seed must be >= 0 or null, got {self.seed}")

    @property
    def protocol_seed(self) -> int:
        """The seed every protocol draw derives from (``seed``, or 0 when unset)."""
        return 0 if self.seed is None else self.seed

    def with_run_seed(self, run_seed: int) -> GenerationProtocol:
        """This protocol with ``seed`` filled in from the run when it was left unset."""
        return self if self.seed is not None else dataclasses.replace(self, seed=run_seed)

    def dit_spec(self) -> DiTSpec:
        """The DiT preset with this protocol's label dropout."""
        return dataclasses.replace(dit_spec(self.dit), class_dropout=self.label_dropout)

    def to_dict(self) -> dict[str, float | int | str | bool | None]:
        """Flat scalars for a logger, including the resolved DiT size (presets could change)."""
        record = dataclasses.asdict(self)
        record["betas"] = list(self.betas)
        record["seed"] = self.protocol_seed
        record.update({f"dit_{k}": v for k, v in dataclasses.asdict(self.dit_spec()).items()})
        return record

    def ema_decay_at(self, updates_done: int) -> float:
        if not self.ema_warmup:
            return self.ema_decay
        return min(self.ema_decay, (1 + updates_done) / (10 + updates_done))


def _derived_seed(seed: int, purpose: str) -> int:
    """Independent seeds for each use of randomness (``"init"``, ``"noise"``, ``"sample/3"`` ...)."""
    digest = hashlib.sha256(f"{seed}/{purpose}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def seeded_generator(seed: int, purpose: str, device: torch.device | str = "cpu") -> torch.Generator:
    """A generator of its own for one use of randomness, so no draw shifts another's stream."""
    return torch.Generator(device=device).manual_seed(_derived_seed(seed, purpose))


def protocol_subset(size: int, count: int, protocol: GenerationProtocol, purpose: str) -> list[int]:
    """``count`` indices of a dataset of ``size``, drawn by the protocol seed (e.g. the reference set).

    A uniformly random subset (the real set is a sample of the data distribution, as the samples are
    of the model's); the same seed picks the same images for every tokenizer.
    """
    if not 1 <= count <= size:
        raise ConfigError(f"cannot draw {count} images from a split of {size}; lower the image count")
    generator = seeded_generator(protocol.protocol_seed, f"subset/{purpose}")
    return torch.randperm(size, generator=generator)[:count].tolist()


def _count_classes(labels: Tensor | None) -> int:
    if labels is None or labels.numel() == 0 or int(labels.max()) < 0:
        return 0
    return int(labels.max()) + 1


def _batch_indices(n: int, batch_size: int, generator: torch.Generator) -> Iterator[Tensor]:
    """Endless batches from successive random permutations (a batch may straddle two epochs)."""
    pending = torch.empty(0, dtype=torch.long)
    while True:
        while pending.numel() < batch_size:
            pending = torch.cat((pending, torch.randperm(n, generator=generator)))
        yield pending[:batch_size]
        pending = pending[batch_size:]


def _report_every_tenth(total: int) -> ProgressFn:
    every = max(1, total // 10)

    def report(step: int, loss: float) -> None:
        if step % every == 0 or step == total:
            print(f"gFID DiT step {step}/{total} loss {loss:.4f}", flush=True)

    return report


@torch.no_grad()
def _ema_update(ema: DiT, model: DiT, decay: float) -> None:
    ema_params, params = list(ema.parameters()), list(model.parameters())
    torch._foreach_lerp_(ema_params, params, 1.0 - decay)


def train_latent_dit(
    latents: Tensor,
    labels: Tensor | None,
    protocol: GenerationProtocol,
    *,
    normalizer: LatentNormalizer,
    num_classes: int | None = None,
    progress: bool | ProgressFn = False,
    snapshot_steps: Sequence[int] = (),
    on_snapshot: Callable[[int, DiT], None] | None = None,
) -> tuple[DiT, list[float]]:
    """Train the protocol's DiT on ``normalizer``-standardised latents; return the EMA model and losses.

    Args:
        latents: the tokenizer's latents ``(N, C, h, w)`` as encoded (not normalised). Training
            runs on their device. Horizontal-flip augmentation is the caller's job: encode the
            flipped images too and pass both.
        labels: ``(N,)`` class ids; ``-1`` (unknown) or ``None`` trains those samples unconditionally.
        protocol: the fixed spec; exactly ``protocol.train_steps`` AdamW steps of
            ``protocol.batch_size``, every random draw (initial weights, batches, noise, times, label
            dropout) from its own generator seeded by ``protocol.seed`` (the caller's global RNG is
            left untouched), so equal latents and seed give an identical DiT.
        normalizer: usually ``LatentNormalizer.fit(latents)``; pass the same one to :func:`sample_latents`.
        num_classes: defaults to ``max(labels) + 1``.
        progress: ``True`` prints ten progress lines; a callable gets ``(step, loss)`` every step.
        snapshot_steps, on_snapshot: ``on_snapshot(step, ema_model)`` is called after each of these
            steps with the live EMA model (copy it to keep it). The learning rate is constant and
            the EMA warm-up depends on the step alone, so the snapshot at step ``k`` is the model a
            ``k``-step protocol trains: one run gives a whole DiT-budget curve.

    Returns:
        ``(ema_model, history)``: the EMA DiT in eval mode and the loss of every step.
    """
    device = latents.device
    data = normalizer.normalize(latents.detach().float())
    if labels is None:
        labels = torch.full((data.shape[0],), -1, dtype=torch.long)
    labels = labels.to(device=device, dtype=torch.long)
    if labels.shape != (data.shape[0],):
        raise ValueError(f"labels {tuple(labels.shape)} do not match {data.shape[0]} latents")
    num_classes = _count_classes(labels) if num_classes is None else num_classes

    seed = protocol.protocol_seed
    with torch.random.fork_rng(devices=[]):  # module construction draws defaults we then overwrite
        model = DiT(
            data.shape[1],
            num_classes,
            protocol.dit_spec(),
            latent_size=tuple(data.shape[-2:]),
            init_generator=seeded_generator(seed, "init"),
        )
    model = model.to(device).train()
    ema = copy.deepcopy(model).eval().requires_grad_(False)
    optimizer = torch.optim.AdamW(
        model.parameters(),
        lr=protocol.lr,
        betas=protocol.betas,
        weight_decay=protocol.weight_decay,
        fused=device.type in ("cpu", "cuda"),  # one kernel for all parameters (CPU default is a Python loop)
    )
    index_generator = seeded_generator(seed, "batches")
    noise_generator = seeded_generator(seed, "noise", device)
    time_generator = seeded_generator(seed, "times", device)
    label_generator = seeded_generator(seed, "label_dropout", device)
    report = _report_every_tenth(protocol.train_steps) if progress is True else progress or None

    losses = torch.empty(protocol.train_steps, device=device)
    batches = _batch_indices(data.shape[0], protocol.batch_size, index_generator)
    for step in range(protocol.train_steps):
        index = next(batches).to(device)
        z, y = data[index], labels[index]
        noise = torch.randn(z.shape, generator=noise_generator, device=device)
        t = logit_normal_times(z.shape[0], protocol.t_mean, protocol.t_std, time_generator, device)
        prediction = model(interpolate(z, noise, t), t, y, label_generator=label_generator)
        loss = F.mse_loss(prediction, velocity_target(z, noise))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        _ema_update(ema, model, protocol.ema_decay_at(step))
        losses[step] = loss.detach()
        if report is not None:
            report(step + 1, loss.item())
        if on_snapshot is not None and step + 1 in snapshot_steps:
            on_snapshot(step + 1, ema)
    return ema, losses.tolist()


@torch.no_grad()
def sample_latents(
    model: DiT,
    protocol: GenerationProtocol,
    normalizer: LatentNormalizer,
    labels: Tensor | None = None,
    *,
    num_samples: int | None = None,
    latent_size: tuple[int, int] | None = None,
    noise_stream: int = 0,
) -> Tensor:
    """Euler-sample latents and map them back to the tokenizer's scale, ready for ``decode``.

    Args:
        model: the (EMA) DiT from :func:`train_latent_dit`.
        labels: classes to generate; by default ``num_samples`` (else ``protocol.num_samples``)
            class-balanced labels ``0, 1, ..., C-1, 0, 1, ...`` (all null-class when unconditional).
        latent_size: ``(h, w)``; defaults to the size the model was trained on.
        noise_stream: which noise sequence to draw; when several processes each sample a share,
            give each its own (e.g. its rank), or the shares start from identical noise.

    Deterministic for a fixed ``protocol.seed`` and ``noise_stream``; uses ``protocol.sampling_steps``,
    ``timestep_shift`` and ``cfg_scale`` (1.0 = no guidance).
    """
    device = next(model.parameters()).device
    if labels is None:
        count = protocol.num_samples if num_samples is None else num_samples
        labels = torch.arange(count) % model.num_classes if model.num_classes else torch.full((count,), -1)
    labels = labels.to(device=device, dtype=torch.long)
    height, width = model.latent_size if latent_size is None else latent_size
    generator = seeded_generator(protocol.protocol_seed, f"sample/{noise_stream}", device)

    was_training = model.training
    model.eval()
    chunks = []
    for batch_labels in labels.split(protocol.sample_batch_size):
        noise = torch.randn(
            (batch_labels.shape[0], model.in_channels, height, width), generator=generator, device=device
        )
        velocity = guided_velocity(model, batch_labels, model.null_class, protocol.cfg_scale)
        chunks.append(euler_sample(velocity, noise, protocol.sampling_steps, protocol.timestep_shift))
    model.train(was_training)
    return normalizer.denormalize(torch.cat(chunks))
