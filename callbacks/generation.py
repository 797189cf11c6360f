"""gFID / gFD: the paper's generation protocol, scaled down, run on the frozen tokenizer.

Freeze the tokenizer, encode the training split (plus horizontal flips), normalise the latents per
channel, train a fixed-spec class-conditional DiT with rectified flow, sample with an Euler ODE
(classifier-free guidance optional), decode, and compare the samples with real held-out images.
The protocol (DiT spec, steps, sampler, guidance, sample counts, extractor) is identical for every
tokenizer in a comparison and is saved next to each result.

Paired evaluation: the DiT's training images, the reference images and every random draw come from
the protocol seed (by default the run's ``seed_everything``), so two tokenizers of the same grid
seed are scored with common random numbers and their difference is not protocol noise.
"""

from __future__ import annotations

import json
import os

import lightning.pytorch as pl
import torch
from safetensors.torch import save_file
from torch.utils.data import Dataset, Subset
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
from vtp_lightning.data.templates import FASHION_MNIST_CLASSES
from vtp_lightning.metrics import FeatureExtractor
from vtp_lightning.metrics.generation import (
    GenerationProtocol,
    LatentNormalizer,
    protocol_subset,
    sample_latents,
    seeded_generator,
    train_latent_dit,
)
from vtp_lightning.metrics.generation_scores import GenerationScores, score_samples
from vtp_lightning.metrics.reference_statistics import cached_reference_features

RUN_SEED_ENV = "PL_GLOBAL_SEED"  # set by Lightning's seed_everything (LightningCLI's seed_everything)


def run_seed() -> int:
    """The run's ``seed_everything``, or 0 when the run was not seeded."""
    text = os.environ.get(RUN_SEED_ENV, "")
    return int(text) if text.strip().lstrip("-").isdigit() else 0


class GenerationEvaluation(EvaluationCallback):
    """Generation quality of the tokenizer's latent space under a fixed DiT protocol.

    Logged, with extractor ``x`` (``fmnist`` or Inception, which makes the names ``gfid``/``gkid``):
    ``eval/gfd_x`` (Fréchet distance at the sizes used), ``eval/gfd_x_inf`` (its 1/N extrapolation,
    free of the small-sample bias), ``eval/gkd_x`` and ``eval/gkd_x_se`` (unbiased kernel distance and
    its standard error), ``eval/gen_class_agreement`` (the fmnist network's prediction vs the
    conditioning label; real images score about 0.9) and ``eval/gen_dit_loss`` (the DiT's final
    training loss). Each evaluation also saves its protocol JSON and a sample grid, one column per class.

    Args:
        protocol: the fixed DiT spec and budget (held constant across tokenizers); ``seed: null``
            uses the run's ``seed_everything``.
        train_images: training-split images encoded for the DiT (each also flipped when ``hflip``),
            drawn from the first ``pool_images`` of the split by the protocol seed.
        hflip: add horizontally flipped copies of the training images.
        reference_images: held-out real images the samples are compared with, drawn like the
            training images.
        feature_extractor: ``fmnist`` (ships with the package) or ``inception`` (needs weights).
        extractor_weights: path to the extractor's weights (inception: or set VTP_INCEPTION_WEIGHTS).
        class_agreement: log the class agreement; ``null`` does so when the data's classes are
            Fashion-MNIST's (the only classes the shipped classifier knows).
        pool_images: size of the split prefix the protocol draws its images from.
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
        class_agreement: bool | None = None,
        pool_images: int = 10000,
        grid_images: int = 100,
        every_n_steps: int | None = None,
        at_fit_end: bool = True,
        batch_size: int = 500,
    ) -> None:
        super().__init__(every_n_steps, at_fit_end, batch_size)
        self.protocol = protocol or GenerationProtocol()
        self.train_images, self.hflip = train_images, hflip
        self.reference_images = reference_images
        self.extractor = ExtractorHolder(feature_extractor, extractor_weights)
        self.classifier = ExtractorHolder("fmnist", None)
        self.class_agreement = class_agreement
        self.pool_images = pool_images
        self.grid_images = grid_images

    def check_inputs(self) -> None:
        self.extractor.get(torch.device("cpu"))  # builds it once: unknown name, missing or wrong weights

    def applies_to(self, pl_module: pl.LightningModule) -> bool:
        return has_trained_decoder(pl_module)

    def _protocol_images(
        self, trainer: pl.Trainer, split: str, count: int, protocol: GenerationProtocol
    ) -> Dataset:
        """``count`` images of ``split`` drawn by the protocol seed (the same for every tokenizer)."""
        pool = datamodule_of(trainer).eval_dataset(split, self.pool_images)
        return Subset(pool, protocol_subset(len(pool), count, protocol, split))

    def _encode_train_split(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, protocol: GenerationProtocol
    ) -> tuple[torch.Tensor, torch.Tensor]:
        dataset = self._protocol_images(trainer, "train", self.train_images, protocol)
        latents, labels = [], []
        for images, y in iterate_images(dataset, trainer, pl_module.device, self.batch_size):
            latents.append(pl_module.encode(images))
            labels.append(y)
            if self.hflip:
                latents.append(pl_module.encode(images.flip(-1)))
                labels.append(y)
        return gather(trainer, torch.cat(latents)), gather(trainer, torch.cat(labels))

    def _agreement_applies(self, trainer: pl.Trainer, num_classes: int | None) -> bool:
        if self.class_agreement is not None:
            return self.class_agreement and bool(num_classes)
        names = datamodule_of(trainer).class_names("val")
        return bool(num_classes) and names == list(FASHION_MNIST_CLASSES)

    def evaluate(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, float]:
        datamodule = datamodule_of(trainer)
        protocol = self.protocol.with_run_seed(run_seed())
        latents, labels = self._encode_train_split(trainer, pl_module, protocol)
        normalizer = LatentNormalizer.fit(latents)
        num_classes = int(labels.max()) + 1 if labels.numel() and int(labels.max()) >= 0 else None
        # Every rank trains the same DiT from the same seed (redundant, but no rank waits on another).
        with torch.enable_grad():
            dit, history = train_latent_dit(
                latents, labels, protocol, normalizer=normalizer, num_classes=num_classes
            )
        # Sample protocol.num_samples images, class-balanced. The sampler's noise comes
        # from a generator seeded by the protocol, so every rank draws the whole set (as one process
        # would) and keeps its own share: ranks never decode copies of the same noise, and the
        # samples do not depend on the number of ranks.
        count = protocol.num_samples
        all_labels = torch.arange(count) % num_classes if num_classes else None
        all_samples = sample_latents(dit, protocol, normalizer, all_labels, num_samples=count)
        share = list(rank_shard(range(count), trainer))
        samples = all_samples[share]
        extractor = self.extractor.get(pl_module.device)
        agreement = self._agreement_applies(trainer, num_classes)
        own_classifier = agreement and extractor.name != "fmnist"
        classifier = self.classifier.get(pl_module.device) if own_classifier else None
        features, logits, shown = [], [], None
        for chunk in samples.split(self.batch_size):
            images01 = denormalize(pl_module.decode(chunk.to(pl_module.device)))
            features.append(extractor(images01))
            if classifier is not None:
                logits.append(classifier.logits(images01))
            if shown is None:
                shown = images01[: self.grid_images]
            elif len(shown) < self.grid_images:  # the grid spans several chunks
                shown = torch.cat([shown, images01[: self.grid_images - len(shown)]])
        sample_features = gather(trainer, torch.cat(features)).double()
        sample_logits, sample_labels = None, None
        if agreement:
            if classifier is not None:
                sample_logits = gather(trainer, torch.cat(logits))
            else:
                sample_logits = extractor.logits_from_features(sample_features.float())
            sample_labels = all_labels[: sample_logits.shape[0]]  # shards are contiguous, in rank order
        reference = self._protocol_images(trainer, "val", self.reference_images, protocol)
        reference_features = cached_reference_features(
            extractor,
            f"{data_id(datamodule, 'val', self.pool_images)}|protocol_seed={protocol.protocol_seed}",
            lambda: real_images01(reference, self.batch_size),
            num_images=len(reference),
            image_size=datamodule.image_size,
        )
        scores = score_samples(
            sample_features,
            reference_features.to(sample_features.device),
            seeded_generator(protocol.protocol_seed, "scores"),
            sample_logits,
            sample_labels,
        )
        tail = history[-max(1, len(history) // 10) :]
        results = self._results(extractor, scores, sum(tail) / len(tail))
        if trainer.is_global_zero:
            self._save_artefacts(trainer, protocol, normalizer, shown, results, scores, history, num_classes)
        return results

    @staticmethod
    def _results(extractor: FeatureExtractor, scores: GenerationScores, dit_loss: float) -> dict[str, float]:
        frechet, kernel = extractor.metric_name("g"), extractor.kernel_metric_name("g")
        results = {
            f"eval/{frechet}": scores.fd,
            f"eval/{frechet}_inf": scores.fd_inf,
            f"eval/{kernel}": scores.kd,
            f"eval/{kernel}_se": scores.kd_se,
            "eval/gen_dit_loss": dit_loss,
        }
        if scores.class_agreement is not None:
            results["eval/gen_class_agreement"] = scores.class_agreement
        return results

    def _save_artefacts(
        self,
        trainer: pl.Trainer,
        protocol: GenerationProtocol,
        normalizer: LatentNormalizer,
        samples01: torch.Tensor | None,
        results: dict[str, float],
        scores: GenerationScores,
        history: list[float],
        num_classes: int | None,
    ) -> None:
        folder = run_directory(trainer) / "generation"
        folder.mkdir(exist_ok=True)
        step = trainer.global_step
        record = {
            "step": step,
            "protocol": protocol.to_dict(),
            "train_images": self.train_images,
            "hflip": self.hflip,
            "reference_images": self.reference_images,
            "pool_images": self.pool_images,
            "feature_extractor": self.extractor.name,
            "feature_dim": scores.feature_dim,
            "scores": scores.to_dict(),
            "frechet_bias_note": "fd is biased upwards at small N; fd_inf extrapolates fd linearly in 1/N "
            "to N = infinity (Chong & Forsyth 2020); fd_bias = fd - fd_inf is the bias at the N used",
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
            # labels cycle 0, 1, ..., C-1: with C columns every column is one class
            columns = num_classes if num_classes and num_classes <= 16 else 8
            grid = make_grid(samples01[: self.grid_images].cpu(), nrow=columns, padding=1, pad_value=1.0)
            save_and_log_image(
                trainer, grid, folder / f"samples_step{step:07d}.png", "eval/generated_samples"
            )
