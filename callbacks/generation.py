"""gFID / gFD: the paper's generation protocol, scaled down, run on the frozen tokenizer.

Freeze the tokenizer, encode the training split (plus horizontal flips), normalise the latents per
channel, train a fixed-spec class-conditional DiT with rectified flow, sample with an Euler ODE,
decode, and compare the samples with the real held-out set. The protocol (DiT spec, steps, sampler)
is identical for every tokenizer in a comparison and is saved next to each result.
"""

from __future__ import annotations

import json

import lightning.pytorch as pl
import torch
from safetensors.torch import save_file
from torchvision.utils import make_grid

from callbacks.evaluation import (
    EvaluationCallback,
    datamodule_of,
    gather,
    has_trained_decoder,
    iterate_images,
    rank_shard,
    real_images01,
    run_directory,
    save_and_log_image,
)
from callbacks.features import ExtractorHolder, data_id
from vtp_lightning.data.normalization import denormalize
from vtp_lightning.metrics import (
    FeatureStatistics,
    cached_reference_statistics,
    frechet_distance_from_statistics,
)
from vtp_lightning.metrics.generation import (
    GenerationProtocol,
    LatentNormalizer,
    sample_latents,
    train_latent_dit,
)


class GenerationEvaluation(EvaluationCallback):
    """Generation quality of the tokenizer's latent space under a fixed DiT protocol.

    Logged as ``eval/gfid`` with the Inception extractor, ``eval/gfd_fmnist`` with the embedded
    one, plus ``eval/gen_dit_loss`` (the DiT's final training loss: how learnable the latents are).

    Args:
        protocol: the fixed DiT spec and budget (held constant across tokenizers).
        train_images: training-split images encoded for the DiT (each also flipped when ``hflip``).
        hflip: add horizontally flipped copies of the training images.
        reference_images: held-out real images the samples are compared with.
        feature_extractor: ``fmnist`` (ships with the package) or ``inception`` (needs weights).
        extractor_weights: path to the extractor's weights (inception: or set VTP_INCEPTION_WEIGHTS).
        grid_images: samples shown in the saved grid (0: none).
        every_n_steps: evaluate every this many steps (null: only at the end of fit).
        at_fit_end: evaluate when fit ends.
        batch_size: images per tokenizer forward pass.
    """

    name = "generation"

    def __init__(
        self,
        protocol: GenerationProtocol | None = None,
        train_images: int = 10000,
        hflip: bool = True,
        reference_images: int = 2000,
        feature_extractor: str = "fmnist",
        extractor_weights: str | None = None,
        grid_images: int = 64,
        every_n_steps: int | None = None,
        at_fit_end: bool = True,
        batch_size: int = 500,
    ) -> None:
        super().__init__(every_n_steps, at_fit_end, batch_size)
        self.protocol = protocol or GenerationProtocol()
        self.train_images, self.hflip = train_images, hflip
        self.reference_images = reference_images
        self.extractor = ExtractorHolder(feature_extractor, extractor_weights)
        self.grid_images = grid_images

    def check_inputs(self) -> None:
        self.extractor.get(torch.device("cpu"))  # builds it once: unknown name, missing or wrong weights

    def applies_to(self, pl_module: pl.LightningModule) -> bool:
        return has_trained_decoder(pl_module)

    def _encode_train_split(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule
    ) -> tuple[torch.Tensor, torch.Tensor]:
        dataset = datamodule_of(trainer).eval_dataset("train", self.train_images)
        latents, labels = [], []
        for images, y in iterate_images(dataset, trainer, pl_module.device, self.batch_size):
            latents.append(pl_module.encode(images))
            labels.append(y)
            if self.hflip:
                latents.append(pl_module.encode(images.flip(-1)))
                labels.append(y)
        return gather(trainer, torch.cat(latents)), gather(trainer, torch.cat(labels))

    def evaluate(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, float]:
        datamodule = datamodule_of(trainer)
        latents, labels = self._encode_train_split(trainer, pl_module)
        normalizer = LatentNormalizer.fit(latents)
        num_classes = int(labels.max()) + 1 if labels.numel() and int(labels.max()) >= 0 else None
        # Every rank trains the same DiT from the same seed (redundant, but no rank waits on another).
        with torch.enable_grad():
            dit, history = train_latent_dit(
                latents, labels, self.protocol, normalizer=normalizer, num_classes=num_classes
            )
        reference = datamodule.eval_dataset("val", self.reference_images)
        # Sample protocol.num_samples images, class-balanced. The sampler's noise comes
        # from a generator seeded by the protocol, so every rank draws the whole set (as one process
        # would) and keeps its own share: ranks never decode copies of the same noise, and the
        # samples do not depend on the number of ranks.
        count = self.protocol.num_samples
        all_labels = torch.arange(count) % num_classes if num_classes else None
        all_samples = sample_latents(dit, self.protocol, normalizer, all_labels, num_samples=count)
        samples = all_samples[list(rank_shard(range(count), trainer))]
        extractor = self.extractor.get(pl_module.device)
        features, shown = [], None
        for chunk in samples.split(self.batch_size):
            images01 = denormalize(pl_module.decode(chunk.to(pl_module.device)))
            features.append(extractor(images01))
            if shown is None:
                shown = images01[: self.grid_images]
            elif len(shown) < self.grid_images:  # the grid spans several chunks
                shown = torch.cat([shown, images01[: self.grid_images - len(shown)]])
        sample_stats = FeatureStatistics.from_features(gather(trainer, torch.cat(features)).double())
        real_stats = cached_reference_statistics(
            extractor,
            data_id(datamodule, "val", len(reference)),
            lambda: real_images01(reference, self.batch_size),
            num_images=len(reference),
            image_size=datamodule.image_size,
        )
        distance = frechet_distance_from_statistics(sample_stats, real_stats)
        tail = history[-max(1, len(history) // 10) :]
        metric = f"eval/{extractor.metric_name('g')}"
        results = {metric: distance, "eval/gen_dit_loss": sum(tail) / len(tail)}
        if trainer.is_global_zero:
            self._save_artefacts(trainer, normalizer, shown, results, history)
        return results

    def _save_artefacts(
        self,
        trainer: pl.Trainer,
        normalizer: LatentNormalizer,
        samples01: torch.Tensor | None,
        results: dict[str, float],
        history: list[float],
    ) -> None:
        folder = run_directory(trainer) / "generation"
        folder.mkdir(exist_ok=True)
        step = trainer.global_step
        record = {
            "step": step,
            "protocol": self.protocol.to_dict(),
            "train_images": self.train_images,
            "hflip": self.hflip,
            "reference_images": self.reference_images,
            "feature_extractor": self.extractor.name,
            "results": results,
            "dit_loss_first": history[0] if history else None,
            "dit_loss_last": history[-1] if history else None,
        }
        (folder / f"protocol_step{step:07d}.json").write_text(json.dumps(record, indent=2))
        save_file(
            {k: v.contiguous().cpu() for k, v in normalizer.state_dict().items()},
            str(folder / f"latent_stats_step{step:07d}.safetensors"),
        )
        if samples01 is not None and self.grid_images > 0:
            grid = make_grid(samples01[: self.grid_images].cpu(), nrow=8, padding=1, pad_value=1.0)
            save_and_log_image(
                trainer, grid, folder / f"samples_step{step:07d}.png", "eval/generated_samples"
            )
