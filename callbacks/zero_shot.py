"""Zero-shot classification through the text tower (only for tokenizers with a contrastive objective)."""

from __future__ import annotations

import lightning.pytorch as pl
import torch

from callbacks.evaluation import EvaluationCallback, datamodule_of, gather, iterate_images
from vtp_lightning.errors import ConfigError
from vtp_lightning.metrics import DEFAULT_TEMPLATES, build_zero_shot_classifier, zero_shot_top1


class ZeroShotEvaluation(EvaluationCallback):
    """Top-1 (percent) of ``100·cosine`` between image embeddings and class-name prompt embeddings.

    Every class name is put into every template; the template embeddings are averaged and
    re-normalised per class. Logged as ``eval/zeroshot_top1``; skipped for tokenizers without CLIP.

    Args:
        eval_images: held-out images classified.
        templates: prompt templates with one ``{}`` for the class name.
        every_n_steps: evaluate every this many steps (null: only at the end of fit).
        at_fit_end: evaluate when fit ends.
        batch_size: images per forward pass.
    """

    name = "zero_shot"

    def __init__(
        self,
        eval_images: int = 2000,
        templates: tuple[str, ...] = DEFAULT_TEMPLATES,
        every_n_steps: int | None = None,
        at_fit_end: bool = True,
        batch_size: int = 500,
    ) -> None:
        super().__init__(every_n_steps, at_fit_end, batch_size)
        self.eval_images, self.templates = eval_images, tuple(templates)

    def applies_to(self, pl_module: pl.LightningModule) -> bool:
        has = getattr(pl_module, "has_objective", None)
        return bool(has and has("clip"))

    def evaluate(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, float]:
        datamodule = datamodule_of(trainer)
        class_names = datamodule.class_names(self.eval_split)
        if not class_names:
            raise ConfigError("zero-shot needs class names on the validation source; this source has none")

        classifier = build_zero_shot_classifier(
            pl_module.encode_text, datamodule.tokenize, class_names, self.templates, device=pl_module.device
        )
        dataset = datamodule.eval_dataset(self.eval_split, self.eval_images)
        embeddings, labels = [], []
        for images, y in iterate_images(dataset, trainer, pl_module.device, self.batch_size):
            embeddings.append(pl_module.encode_image_embedding(images).float())
            labels.append(y)
        top1 = zero_shot_top1(
            gather(trainer, torch.cat(embeddings)), classifier, gather(trainer, torch.cat(labels))
        )
        return {"eval/zeroshot_top1": 100.0 * top1}
