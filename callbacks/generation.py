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
from torchvision.utils import make_grid

from callbacks.evaluation import (
    EvaluationCallback,
    datamodule_of,
    gather,
    has_trained_decoder,
    held_out_as,
    rank_shard,
    run_directory,
    save_and_log_image,
)
from callbacks.features import ExtractorHolder
from vtp_lightning.data.templates import FASHION_MNIST_CLASSES
from vtp_lightning.metric_names import generation_metric_names
from vtp_lightning.metrics.generation import GenerationProtocol
from vtp_lightning.metrics.generation_eval import (
    DEFAULT_COUNTS,
    GenerationCounts,
    GenerationRun,
    Shards,
    agreement_applies,
    evaluate_generation,
)
from vtp_lightning.metrics.reference_statistics import data_id

RUN_SEED_ENV = "PL_GLOBAL_SEED"  # set by Lightning's seed_everything (LightningCLI's seed_everything)


def run_seed() -> int:
    """The run's ``seed_everything``, or 0 when the run was not seeded."""
    text = os.environ.get(RUN_SEED_ENV, "")
    return int(text) if text.strip().lstrip("-").isdigit() else 0


def trainer_shards(trainer: pl.Trainer) -> Shards:
    """This rank's equal, contiguous share of any set, and the gather that joins every rank's part."""
    return Shards(
        share=lambda count: list(rank_shard(range(count), trainer)),  # type: ignore[arg-type,call-overload]
        gather=lambda tensor: gather(trainer, tensor),
    )


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
        train_images: int = DEFAULT_COUNTS.train_images,
        hflip: bool = DEFAULT_COUNTS.hflip,
        reference_images: int = DEFAULT_COUNTS.reference_images,
        feature_extractor: str = "fmnist",
        extractor_weights: str | None = None,
        class_agreement: bool | None = None,
        pool_images: int = DEFAULT_COUNTS.pool_images,
        grid_images: int = 100,
        every_n_steps: int | None = None,
        at_fit_end: bool = True,
        batch_size: int = DEFAULT_COUNTS.batch_size,
    ) -> None:
        super().__init__(every_n_steps, at_fit_end, batch_size)
        self.protocol = protocol or GenerationProtocol()
        self.counts = GenerationCounts(train_images, reference_images, pool_images, hflip, batch_size)
        self.extractor = ExtractorHolder(feature_extractor, extractor_weights)
        self.classifier = ExtractorHolder("fmnist", None)
        self.class_agreement = class_agreement
        self.grid_images = grid_images

    def check_inputs(self) -> None:
        self.extractor.get(torch.device("cpu"))  # builds it once: unknown name, missing or wrong weights

    def applies_to(self, pl_module: pl.LightningModule) -> bool:
        return has_trained_decoder(pl_module)

    def evaluate(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, float]:
        datamodule = datamodule_of(trainer)
        protocol = self.protocol.with_run_seed(run_seed())
        extractor = self.extractor.get(pl_module.device)
        classifier = None
        if agreement_applies(
            self.class_agreement, datamodule.class_names(self.eval_split), FASHION_MNIST_CLASSES
        ):
            classifier = extractor if extractor.name == "fmnist" else self.classifier.get(pl_module.device)
        run = evaluate_generation(
            pl_module.encode,
            pl_module.decode,
            held_out_as(datamodule.eval_dataset, self.eval_split),
            extractor,
            protocol,
            self.counts,
            reference_id=data_id(datamodule, self.eval_split, self.counts.pool_images),
            image_size=datamodule.image_size,
            classifier=classifier,
            keep_samples=self.grid_images,
            device=pl_module.device,
            shards=trainer_shards(trainer),
        )
        (result,) = run.results
        names = generation_metric_names(extractor.name)
        results = {names[field]: value for field, value in result.values().items()}
        if trainer.is_global_zero:
            self._save_artefacts(trainer, protocol, run, results)
        return results

    def _save_artefacts(
        self, trainer: pl.Trainer, protocol: GenerationProtocol, run: GenerationRun, results: dict[str, float]
    ) -> None:
        (result,) = run.results
        history, scores, num_classes = run.history, result.scores, run.num_classes
        folder = run_directory(trainer) / "generation"
        folder.mkdir(exist_ok=True)
        step = trainer.global_step
        record = {
            "step": step,
            "protocol": protocol.to_dict(),
            "train_images": self.counts.train_images,
            "hflip": self.counts.hflip,
            "reference_images": self.counts.reference_images,
            "pool_images": self.counts.pool_images,
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
            {k: v.contiguous().cpu() for k, v in run.normalizer.state_dict().items()},
            str(folder / f"latent_stats_step{step:07d}.safetensors"),
        )
        samples01 = result.samples01
        if samples01 is not None and self.grid_images > 0:
            # labels cycle 0, 1, ..., C-1: with C columns every column is one class
            columns = num_classes if num_classes and num_classes <= 16 else 8
            grid = make_grid(samples01[: self.grid_images].cpu(), nrow=columns, padding=1, pad_value=1.0)
            save_and_log_image(
                trainer, grid, folder / f"samples_step{step:07d}.png", "eval/generated_samples"
            )
