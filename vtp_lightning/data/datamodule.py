"""``VTPDataModule``: training batches for every objective and deterministic evaluation data.

Training batches follow ``docs/CONTRACTS.md`` (built by :class:`~vtp_lightning.data.collate.TrainCollate`);
validation batches are ``{image, label, text}``; callbacks read evaluation subsets through
:meth:`VTPDataModule.eval_dataset`, :meth:`VTPDataModule.class_names` and :meth:`VTPDataModule.tokenize`.
Everything is built lazily, so the module works without a Trainer (tests and callbacks call it directly).

Distributed training: for indexed sources Lightning swaps the shuffling sampler for a
``DistributedSampler``; streaming sources split their shards over ranks and workers themselves
(:mod:`vtp_lightning.data.sharding`). Unreadable samples fail with a :class:`DataError` naming the file,
or with ``skip_corrupt`` are dropped and counted in ``batch["skipped"]`` (:mod:`vtp_lightning.data.collate`).

Randomness: the train order and the augmentations of an indexed source are functions of the global
seed (``seed_everything``; else ``seed``), the epoch and the batch's place in it, whatever the number
of workers; the loader is stateful, so a run resumed from a mid-epoch checkpoint sees exactly the
batches the uninterrupted run would (:mod:`vtp_lightning.data.resumable`). Streaming sources shuffle
each consumer's stream with a seed of (seed, epoch, rank, worker) and resume mid-epoch past the samples
already consumed (:mod:`vtp_lightning.data.resumable_stream` says what that guarantees).
"""

from __future__ import annotations

import numpy as np
from lightning.pytorch import LightningDataModule
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from vtp_lightning.data.collate import EvalCollate, TrainCollate
from vtp_lightning.data.datasets import (
    EvalItems,
    StreamingEvalItems,
    StreamingTrainItems,
    TrainItems,
    read_stream,
)
from vtp_lightning.data.eval_order import balanced_order
from vtp_lightning.data.image_io import DEFAULT_MAX_PIXELS, WHITE, configure_image_reading
from vtp_lightning.data.masking import BlockMaskGenerator
from vtp_lightning.data.predict_items import PredictItems
from vtp_lightning.data.resumable import EpochShuffle, ResumableDataLoader, SeededBatches, global_seed
from vtp_lightning.data.resumable_stream import ResumableStreamLoader
from vtp_lightning.data.sources.base import ImageTextSource, IndexedSource
from vtp_lightning.data.sources.embedded import EmbeddedFashionMNIST
from vtp_lightning.data.tokenizer import CaptionTokenizer
from vtp_lightning.data.views import MultiCropView, ReconstructionView, default_local_crop_size
from vtp_lightning.errors import ConfigError, DataError
from vtp_lightning.option_checks import check_data_options

SPLITS: tuple[str, ...] = ("train", "val", "test")


def _check_scale(name: str, scale: tuple[float, float]) -> tuple[float, float]:
    low, high = (float(v) for v in scale)
    if not 0.0 < low <= high <= 1.0:
        raise ConfigError(
            f"{name} must satisfy 0 < low <= high <= 1 (fractions of the image area), got {scale}"
        )
    return low, high


class VTPDataModule(LightningDataModule):
    """Image-caption data for VTP: reconstruction view, captions, multi-crop and iBOT masks.

    The default sources are the embedded Fashion-MNIST slice (train: 10k, val: the 2k test images),
    whose captions are templated from the class names.

    Args:
        train: training source; ``None`` uses ``EmbeddedFashionMNIST(split="train")``.
        val: validation / evaluation source; ``None`` uses ``EmbeddedFashionMNIST(split="test")``.
        test: what ``lightning test`` evaluates on; ``None`` uses ``val`` (with the default embedded
            training data, its test split), and refuses to guess when only ``train`` was given.
        predict: what ``lightning predict`` encodes into latents (every sample, in order); ``None`` uses ``train``.
        image_size: side of the reconstruction view and of the global crops, in pixels.
        patch_size: the encoder's patch size; crop sizes must be multiples of it (mask grid = size / patch).
        batch_size: image-caption pairs per batch (every row feeds CLIP and reconstruction).
        ssl_batch_size: rows per batch that get multi-crop views for DINO / iBOT; ``None`` means all rows,
            ``0`` turns multi-crop and masks off.
        num_local_crops: local crops per SSL row (DINOv2 uses 8; 0 turns local crops off).
        global_crop_scale: range of the image area a global crop covers (DINOv2: 0.32-1).
        local_crop_scale: range of the image area a local crop covers (DINOv2: 0.05-0.32).
        local_crop_size: side of the local crops; ``None`` scales DINOv2's 96/224 to ``image_size``,
            rounded to whole patches.
        mask_ratio: range of the fraction of patches masked in a masked global crop.
        mask_probability: fraction of global crops that are masked at all (0 turns masks off).
        context_length: caption tokens per row (32 for CPU runs, 77 as in CLIP).
        num_workers: DataLoader worker processes.
        skip_corrupt: skip unreadable samples (counted in ``batch["skipped"]``) instead of failing.
        seed: seed of the fixed, class-balanced evaluation order.
        hflip: random horizontal flips of the training views and crops.
        color_jitter: strength of a mild colour jitter on the crops (0 = off).
        val_limit: validate on only the first ``val_limit`` samples of the evaluation order (``None``: all).
        background: colour (R, G, B in 0..255) that transparent images are composited over.
        max_image_pixels: images with more pixels are refused as possible decompression bombs
            (a :class:`DataError`, skippable with ``skip_corrupt``); ``None`` removes the limit.
    """

    def __init__(
        self,
        train: ImageTextSource | None = None,
        val: ImageTextSource | None = None,
        test: ImageTextSource | None = None,
        predict: ImageTextSource | None = None,
        image_size: int = 32,
        patch_size: int = 4,
        batch_size: int = 64,
        ssl_batch_size: int | None = None,
        num_local_crops: int = 4,
        global_crop_scale: tuple[float, float] = (0.32, 1.0),
        local_crop_scale: tuple[float, float] = (0.05, 0.32),
        local_crop_size: int | None = None,
        mask_ratio: tuple[float, float] = (0.1, 0.5),
        mask_probability: float = 0.5,
        context_length: int = 32,
        num_workers: int = 2,
        skip_corrupt: bool = False,
        seed: int = 0,
        hflip: bool = True,
        color_jitter: float = 0.0,
        val_limit: int | None = None,
        background: tuple[int, int, int] = WHITE,
        max_image_pixels: int | None = DEFAULT_MAX_PIXELS,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["train", "val", "test", "predict"])
        check_data_options(self.hparams, prefix="")  # the one table: vtp_lightning.option_checks
        local_size = (  # (the default is whole patches)
            default_local_crop_size(image_size, patch_size) if local_crop_size is None else local_crop_size
        )
        for name, source in (("train", train), ("val", val), ("test", test), ("predict", predict)):
            if source is not None and not isinstance(source, ImageTextSource):
                raise ConfigError(
                    f"{name} must be an ImageTextSource (e.g. vtp_lightning.data.ImageFolder), "
                    f"got {type(source).__name__}"
                )
        configure_image_reading(background, max_image_pixels)
        self.background, self.max_image_pixels = tuple(background), max_image_pixels
        self._train_source, self._val_source = train, val
        self._test_source, self._predict_source = test, predict
        self._given = {"train": train is not None, "val": val is not None}
        self.image_size, self.patch_size = image_size, patch_size
        self.batch_size, self.ssl_batch_size = batch_size, ssl_batch_size
        self.num_local_crops, self.local_crop_size = num_local_crops, local_size
        self.global_crop_scale = _check_scale("global_crop_scale", global_crop_scale)
        self.local_crop_scale = _check_scale("local_crop_scale", local_crop_scale)
        self.mask_generator = BlockMaskGenerator(
            image_size // patch_size, tuple(mask_ratio), mask_probability
        )
        self.tokenizer = CaptionTokenizer(context_length)
        self.context_length = context_length
        self.num_workers, self.skip_corrupt, self.seed = num_workers, skip_corrupt, seed
        self.hflip, self.color_jitter, self.val_limit = hflip, color_jitter, val_limit
        self._eval_cache: dict[tuple[str, int | None], Dataset] = {}

    # ---- sources -------------------------------------------------------------------------------
    @property
    def train_source(self) -> ImageTextSource:
        if self._train_source is None:
            self._train_source = EmbeddedFashionMNIST(split="train")
        return self._train_source

    @property
    def val_source(self) -> ImageTextSource:
        if self._val_source is None:
            self._val_source = EmbeddedFashionMNIST(split="test")
        return self._val_source

    @property
    def test_source(self) -> ImageTextSource:
        """``test``, else ``val``; the embedded test split only when the training data is embedded too."""
        if self._test_source is not None:
            return self._test_source
        if self._given["val"] or not self._given["train"]:
            return self.val_source
        raise ConfigError(
            f"lightning test has no held-out split for {self.train_source.describe()}: set data.test (or data.val) "
            "to a source of held-out images, e.g. {class_path: vtp_lightning.data.ImageFolder, init_args: {root: ...}}"
        )

    @property
    def predict_source(self) -> ImageTextSource:
        """What ``lightning predict`` encodes: ``predict``, else the training source."""
        return self._predict_source if self._predict_source is not None else self.train_source

    def source(self, split: str) -> ImageTextSource:
        """The source behind ``split`` (``"train"``, ``"val"`` or ``"test"``)."""
        if split not in SPLITS:
            raise ConfigError(f"unknown split {split!r}; use one of {list(SPLITS)}")
        if split == "train":
            return self.train_source
        return self.val_source if split == "val" else self.test_source

    @property
    def multicrop_enabled(self) -> bool:
        return self.ssl_batch_size != 0

    def setup(self, stage: str | None = None) -> None:
        """Build the sources and load the tokenizer (before workers fork, so they share it)."""
        configure_image_reading(self.background, self.max_image_pixels)  # workers inherit it
        _ = self.train_source, self.val_source
        if stage == "test":
            _ = self.test_source  # no held-out split: one error before any model work
        self.tokenizer.load()

    # ---- training ------------------------------------------------------------------------------
    def train_collate(self) -> TrainCollate:
        """The collate that builds the CONTRACTS training batch."""
        multicrop = None
        if self.multicrop_enabled:
            multicrop = MultiCropView(
                global_size=self.image_size,
                local_size=self.local_crop_size,
                num_local=self.num_local_crops,
                global_scale=self.global_crop_scale,
                local_scale=self.local_crop_scale,
                hflip=self.hflip,
                jitter=self.color_jitter,
            )
        return TrainCollate(
            view=ReconstructionView(self.image_size, hflip=self.hflip),
            tokenizer=self.tokenizer,
            multicrop=multicrop,
            masks=self.mask_generator if multicrop is not None else None,
            ssl_batch_size=self.ssl_batch_size,
            report_skipped=self.skip_corrupt,
        )

    def train_dataloader(self) -> DataLoader:
        self.setup()
        source = self.train_source
        if isinstance(source, IndexedSource):
            if len(source) < self.batch_size:
                raise DataError(
                    f"{source.describe()} has {len(source)} samples, fewer than batch_size {self.batch_size}; "
                    "add data or lower batch_size"
                )
            seed = self.train_seed()
            return ResumableDataLoader(
                TrainItems(source, self.skip_corrupt),
                batch_sampler=SeededBatches(EpochShuffle(len(source), seed), self.batch_size, True, seed),
                num_workers=self.num_workers,
                collate_fn=self.train_collate(),
                persistent_workers=self.num_workers > 0,
                consumed=self._consumed_train_batches,
            )
        rank, world = (self.trainer.global_rank, self.trainer.world_size) if self.trainer else (None, None)
        return ResumableStreamLoader(
            StreamingTrainItems(source, self.skip_corrupt, rank, world),
            batch_size=self.batch_size,
            drop_last=True,
            num_workers=self.num_workers,
            collate_fn=self.train_collate(),
            seed=self.train_seed(),
            epoch=self._current_epoch,
            consumed=self._consumed_train_batches,
        )

    def train_seed(self) -> int:
        """Seed of the training order and augmentations: ``seed_everything``'s, else ``seed``."""
        return global_seed(self.seed)

    def _current_epoch(self) -> int | None:
        return self.trainer.current_epoch if self.trainer is not None else None

    def _consumed_train_batches(self) -> int | None:
        """Batches of the current epoch that training has consumed (what a checkpoint must skip)."""
        trainer = self.trainer
        if trainer is None:
            return None
        return trainer.fit_loop.epoch_loop.batch_progress.current.processed

    # ---- evaluation ----------------------------------------------------------------------------
    def val_dataloader(self) -> DataLoader:
        """Batches ``{image (B, 3, S, S), label (B,), text (B, context_length)}`` in a fixed order."""
        return self._eval_loader("val", self.val_limit)

    def test_dataloader(self) -> DataLoader:
        """Like :meth:`val_dataloader`, over the whole test split (``data.test``, else ``data.val``)."""
        return self._eval_loader("test", None)

    def predict_dataloader(self) -> DataLoader:
        """Batches ``{image, label, index}`` of every sample of ``predict`` in source order.

        A latent writer among the trainer's callbacks (one with ``predict_sampler``, e.g.
        :class:`~vtp_lightning.latents.LatentWriter`) decides which indices this rank encodes.
        """
        self.setup()
        source = self.predict_source
        if not isinstance(source, IndexedSource):
            raise ConfigError(
                f"lightning predict needs an indexed source to number every sample, not {source.describe()}; "
                "use an ImageFolder, CaptionFile or FashionMNISTIDX source as data.predict"
            )
        dataset = PredictItems(source, self._eval_view())
        trainer = self.trainer
        writer = (
            next((c for c in trainer.callbacks if hasattr(c, "predict_sampler")), None) if trainer else None
        )
        if writer is None:
            raise ConfigError(
                "lightning predict writes latents through a LatentWriter callback; add "
                "--config experiments/predict/latents.yaml after your config (or run vtp-encode)"
            )
        sampler = writer.predict_sampler(
            trainer, len(dataset), self.batch_size, source.describe(), self.image_size
        )
        return DataLoader(
            dataset, batch_size=self.batch_size, shuffle=False, sampler=sampler, num_workers=self.num_workers
        )

    def _eval_loader(self, split: str, limit: int | None) -> DataLoader:
        self.setup()
        source = self.source(split)
        if isinstance(source, IndexedSource) or limit is not None:
            dataset = self._eval_items(split, limit, with_caption=True)
        else:
            dataset = StreamingEvalItems(source, self._eval_view(), self.skip_corrupt)
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=False,
            num_workers=self.num_workers,
            collate_fn=EvalCollate(self.tokenizer),
            persistent_workers=self.num_workers > 0,
        )

    def eval_dataset(self, split: str, limit: int | None = None) -> Dataset:
        """Map-style ``{"image": float (3, S, S), "label": long}`` items, the same every call.

        The items are the first ``limit`` of a seeded, class-balanced order of the split (file order
        for streaming sources, which are read into memory up to ``limit``).
        """
        if limit is not None and limit < 1:
            raise ConfigError(f"eval_dataset limit must be positive or None, got {limit}")
        key = (split, limit)
        if key not in self._eval_cache:
            self._eval_cache[key] = self._eval_items(split, limit, with_caption=False)
        return self._eval_cache[key]

    def class_names(self, split: str) -> list[str] | None:
        """Class names of ``split`` indexed by label (for zero-shot), or ``None``."""
        names = self.source(split).class_names
        return list(names) if names is not None else None

    def tokenize(self, texts: list[str]) -> Tensor:
        """Tokens ``(len(texts), context_length)`` from the training tokenizer."""
        return self.tokenizer(texts)

    def _eval_view(self) -> ReconstructionView:
        return ReconstructionView(self.image_size, hflip=False)

    def _eval_items(self, split: str, limit: int | None, with_caption: bool) -> EvalItems:
        source = self.source(split)
        if isinstance(source, IndexedSource):
            order = balanced_order(len(source), source.labels(), self.seed)
        else:
            source = read_stream(source, limit, self.skip_corrupt)
            order = np.arange(len(source))
        return EvalItems(source, order, limit, self._eval_view(), self.skip_corrupt, with_caption)
