"""rFID / rFD: reconstruct held-out images and compare them with the originals."""

from __future__ import annotations

import lightning.pytorch as pl
import torch
from torchvision.utils import make_grid

from callbacks.evaluation import (
    EvaluationCallback,
    datamodule_of,
    gather,
    has_trained_decoder,
    iterate_images,
    real_images01,
    run_directory,
    save_and_log_image,
)
from callbacks.features import ExtractorHolder, data_id
from vtp_lightning.metrics import (
    FeatureStatistics,
    cached_reference_statistics,
    frechet_distance_from_statistics,
    psnr_per_image,
    ssim_per_image,
)
from vtp_lightning.pixels import denormalize


class ReconstructionEvaluation(EvaluationCallback):
    """Reconstruction quality: Fréchet distance between reconstructions and originals, PSNR, SSIM.

    With ``feature_extractor: inception`` (real weights, SHA-256 ``6726825d…``) the distance is logged
    as ``eval/rfid``; with the embedded ``fmnist`` classifier it is ``eval/rfd_fmnist`` — a Fréchet
    distance on other features, not comparable with published FIDs. A grid of originals (top rows)
    and reconstructions (bottom rows) is saved as PNG and sent to TensorBoard.

    Args:
        num_images: held-out images reconstructed per evaluation.
        feature_extractor: ``fmnist`` (ships with the package), ``inception`` (needs weights), or ``null``:
            PSNR and SSIM only, no Fréchet distance (e.g. at 256 px, where the fmnist net, trained on
            28 px clothing, says little, and no Inception weights are at hand).
        extractor_weights: path to the extractor's weights (inception: or set VTP_INCEPTION_WEIGHTS).
        grid_images: images shown in the logged grid (0: none).
        every_n_steps: evaluate every this many steps (null: only at the end of fit).
        at_fit_end: evaluate when fit ends.
        batch_size: images per forward pass.
    """

    name = "reconstruction"

    def __init__(
        self,
        num_images: int = 1000,
        feature_extractor: str | None = "fmnist",
        extractor_weights: str | None = None,
        grid_images: int = 16,
        every_n_steps: int | None = None,
        at_fit_end: bool = True,
        batch_size: int = 250,
    ) -> None:
        super().__init__(every_n_steps, at_fit_end, batch_size)
        self.num_images = num_images
        self.extractor = (
            ExtractorHolder(feature_extractor, extractor_weights) if feature_extractor is not None else None
        )
        self.grid_images = grid_images

    def check_inputs(self) -> None:
        if self.extractor is not None:
            self.extractor.get(torch.device("cpu"))  # builds it once: unknown name, missing or wrong weights

    def applies_to(self, pl_module: pl.LightningModule) -> bool:
        return has_trained_decoder(pl_module)

    def evaluate(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, float]:
        datamodule = datamodule_of(trainer)
        dataset = datamodule.eval_dataset(self.eval_split, self.num_images)
        extractor = self.extractor.get(pl_module.device) if self.extractor is not None else None
        features, psnr, ssim, shown = [], [], [], None
        for images, _ in iterate_images(dataset, trainer, pl_module.device, self.batch_size):
            recon01 = denormalize(pl_module.decode(pl_module.encode(images)))
            real01 = denormalize(images)
            if extractor is not None:
                features.append(extractor(recon01))
            psnr.append(psnr_per_image(recon01, real01))
            ssim.append(ssim_per_image(recon01, real01))
            if shown is None:
                shown = (real01[: self.grid_images], recon01[: self.grid_images])
            elif len(shown[0]) < self.grid_images:  # the grid spans several batches
                room = self.grid_images - len(shown[0])
                shown = (torch.cat([shown[0], real01[:room]]), torch.cat([shown[1], recon01[:room]]))
        if shown is not None and self.grid_images > 0 and trainer.is_global_zero:
            self._log_grid(trainer, *shown)
        metrics = {
            "eval/psnr": float(gather(trainer, torch.cat(psnr)).mean()),
            "eval/ssim": float(gather(trainer, torch.cat(ssim)).mean()),
        }
        if extractor is None:
            return metrics
        recon_stats = FeatureStatistics.from_features(gather(trainer, torch.cat(features)).double())
        real_stats = cached_reference_statistics(
            extractor,
            data_id(datamodule, self.eval_split, len(dataset)),
            lambda: real_images01(dataset, self.batch_size),
            num_images=len(dataset),
            image_size=datamodule.image_size,
        )
        fd = frechet_distance_from_statistics(recon_stats, real_stats)
        return {f"eval/{extractor.metric_name('r')}": fd, **metrics}

    def _log_grid(self, trainer: pl.Trainer, real01: torch.Tensor, recon01: torch.Tensor) -> None:
        per_row = min(8, real01.shape[0])
        rows = []
        for start in range(0, real01.shape[0], per_row):
            rows += [real01[start : start + per_row], recon01[start : start + per_row]]
        grid = make_grid(torch.cat(rows).cpu(), nrow=per_row, padding=1, pad_value=1.0)
        folder = run_directory(trainer) / "images"
        folder.mkdir(exist_ok=True)
        path = folder / f"reconstructions_step{trainer.global_step:07d}.png"
        save_and_log_image(trainer, grid, path, "eval/reconstructions")
