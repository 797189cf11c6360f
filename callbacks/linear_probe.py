"""Linear probe on frozen features: pre-bottleneck CLS (+ pooled patches) and the d-dim latent."""

from __future__ import annotations

from typing import Literal

import lightning.pytorch as pl
import torch

from callbacks.evaluation import EvaluationCallback, datamodule_of, gather, iterate_images
from vtp_lightning.metrics import linear_probe


class LinearProbeEvaluation(EvaluationCallback):
    """Top-1 of multinomial logistic regression on frozen features, best over a small lr / wd grid.

    Features are extracted once per evaluation (train split for fitting, held-out split for
    scoring), then every grid setting is fit on the cached tensors. Logged as
    ``eval/probe_cls_top1`` (normed CLS concatenated with the mean patch token, before the bottleneck)
    and ``eval/probe_latent_top1`` (the bottleneck latent, the paper's second probe), in percent.

    Args:
        train_images: training-split images the probe is fit on.
        eval_images: held-out images it is scored on.
        source: ``teacher`` reads the EMA teacher's trunk when the model has one, else the student.
        latent_pooling: ``mean`` (d-dim, averaged over positions) or ``flat`` (all d·h·w values).
        learning_rates: grid of probe learning rates.
        weight_decays: grid of probe L2 penalties.
        steps: optimisation steps per grid setting.
        every_n_steps: evaluate every this many steps (null: only at the end of fit).
        at_fit_end: evaluate when fit ends.
        batch_size: images per forward pass.
    """

    name = "linear_probe"

    def __init__(
        self,
        train_images: int = 5000,
        eval_images: int = 2000,
        source: Literal["student", "teacher"] = "teacher",
        latent_pooling: Literal["mean", "flat"] = "mean",
        learning_rates: tuple[float, ...] = (0.01, 0.1),
        weight_decays: tuple[float, ...] = (0.0, 1e-4, 1e-3),
        steps: int = 200,
        every_n_steps: int | None = None,
        at_fit_end: bool = True,
        batch_size: int = 500,
    ) -> None:
        super().__init__(every_n_steps, at_fit_end, batch_size)
        self.train_images, self.eval_images = train_images, eval_images
        self.source, self.latent_pooling = source, latent_pooling
        self.grid = {
            "learning_rates": tuple(learning_rates),
            "weight_decays": tuple(weight_decays),
            "steps": steps,
        }

    def applies_to(self, pl_module: pl.LightningModule) -> bool:
        return hasattr(pl_module, "extract_features")

    def _features(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, split: str, limit: int
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        dataset = datamodule_of(trainer).eval_dataset(split, limit)
        cls, latent, labels = [], [], []
        latent_key = "latent_mean" if self.latent_pooling == "mean" else "latent"
        for images, y in iterate_images(dataset, trainer, pl_module.device, self.batch_size):
            feats = pl_module.extract_features(images, source=self.source)
            cls.append(torch.cat([feats["cls"], feats["patch_mean"]], dim=1).float())
            latent.append(feats[latent_key].float())
            labels.append(y)
        return (
            {"cls": gather(trainer, torch.cat(cls)), "latent": gather(trainer, torch.cat(latent))},
            gather(trainer, torch.cat(labels)),
        )

    def evaluate(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, float]:
        train_x, train_y = self._features(trainer, pl_module, "train", self.train_images)
        eval_x, eval_y = self._features(trainer, pl_module, self.eval_split, self.eval_images)
        results = {}
        for kind in ("cls", "latent"):
            result = linear_probe(train_x[kind], train_y, eval_x[kind], eval_y, **self.grid)
            results[f"eval/probe_{kind}_top1"] = 100.0 * result.top1
        return results
