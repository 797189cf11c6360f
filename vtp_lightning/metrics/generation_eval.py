"""The gFD protocol, run end to end: the one flow the training callback and ``protocol_eval`` share.

Draw the protocol's images (by its seed), encode the training images and their flips, normalise,
train the fixed DiT (snapshots give several DiT budgets from one run), sample class-balanced
latents, decode, extract features and score them against the cached features of the reference
images. Lightning-free: the caller hands in ``encode``/``decode``, the dataset and, under DDP, how
work is shared out (:class:`Shards`).

The flow is split where precomputed latents could enter: :func:`encode_training_latents` makes
them, :func:`generate_and_score` takes them from anywhere.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator, Sequence, Sized
from dataclasses import dataclass
from typing import Protocol, cast

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Subset

from vtp_lightning.errors import ConfigError
from vtp_lightning.metrics.feature_extractor import FeatureExtractor
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
from vtp_lightning.models.dit import DiT
from vtp_lightning.pixels import denormalize


class SampleClassifier(Protocol):
    """What measures class agreement (the fmnist network): logits of ``[0, 1]`` images, or of the
    features it extracted itself when it is also the feature extractor."""

    def logits(self, images01: Tensor) -> Tensor: ...

    def logits_from_features(self, features: Tensor) -> Tensor: ...


EvalDataset = Callable[[str, int], Dataset]
"""``eval_dataset(split, n)``: the first ``n`` images of a split (``VTPDataModule.eval_dataset``)."""


@dataclass(frozen=True)
class GenerationCounts:
    """How many images the protocol draws, from which prefix of each split, and how they are batched.

    The one set of defaults (the callback's and ``protocol_eval``'s): CPU scale like
    :class:`GenerationProtocol`'s, 1000 training images (plus flips) and 500 reference images, as
    many as the protocol samples. ``batch_size`` 500 is what every grid cell ran with: the batch
    changes the encoder's summation order (the last bits of every score), so ``protocol_eval`` at
    the defaults repeats a grid cell's evaluation (same images, draws and batches).
    """

    train_images: int = 1000
    reference_images: int = 500
    pool_images: int = 10000
    hflip: bool = True
    batch_size: int = 500

    def __post_init__(self) -> None:
        for name in ("train_images", "reference_images", "pool_images", "batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"generation evaluation: {name} must be >= 1, got {getattr(self, name)}")


DEFAULT_COUNTS = GenerationCounts()


def _everything(count: int) -> Sequence[int]:
    return range(count)


def _unchanged(tensor: Tensor) -> Tensor:
    return tensor


@dataclass(frozen=True)
class Shards:
    """How work is shared between processes: ``share(n)`` is this process's part of ``range(n)``
    (equal-sized, contiguous, in rank order) and ``gather`` concatenates every process's tensor.
    The default is one process."""

    share: Callable[[int], Sequence[int]] = _everything
    gather: Callable[[Tensor], Tensor] = _unchanged


ONE_PROCESS = Shards()


@dataclass(frozen=True)
class GenerationResult:
    """The scores at one DiT budget; ``samples01`` holds the first decoded samples (for a grid)."""

    dit_steps: int
    scores: GenerationScores
    dit_loss: float
    samples01: Tensor | None
    dit_seconds: float
    sample_seconds: float

    def values(self) -> dict[str, float]:
        """Every score by field name (class agreement only when measured); the logged names are
        :func:`vtp_lightning.metric_names.generation_metric_names`."""
        values = {
            "fd": self.scores.fd,
            "fd_inf": self.scores.fd_inf,
            "kd": self.scores.kd,
            "kd_se": self.scores.kd_se,
            "dit_loss": self.dit_loss,
        }
        if self.scores.class_agreement is not None:
            values["class_agreement"] = self.scores.class_agreement
        return values


@dataclass
class GenerationRun:
    """One protocol run: a result per DiT budget, plus what the callback saves next to them."""

    results: list[GenerationResult]
    normalizer: LatentNormalizer
    history: list[float]
    num_classes: int | None
    encode_seconds: float = 0.0


def draw_protocol_images(
    eval_dataset: EvalDataset, split: str, count: int, counts: GenerationCounts, protocol: GenerationProtocol
) -> Dataset:
    """``count`` images of ``split`` drawn by the protocol seed from its first ``pool_images``
    (the same images for every tokenizer evaluated with that seed)."""
    pool = eval_dataset(split, counts.pool_images)
    return Subset(pool, protocol_subset(len(pool), count, protocol, split))


def _batches(
    dataset: Dataset, batch_size: int, device: torch.device, shards: Shards
) -> Iterator[tuple[Tensor, Tensor]]:
    share = Subset(dataset, shards.share(len(dataset)))
    for batch in DataLoader(share, batch_size=batch_size, shuffle=False, num_workers=0):
        yield batch["image"].to(device), batch["label"].to(device)


@torch.no_grad()
def encode_training_latents(
    encode: Callable[[Tensor], Tensor],
    images: Dataset,
    counts: GenerationCounts,
    device: torch.device | str = "cpu",
    shards: Shards = ONE_PROCESS,
) -> tuple[Tensor, Tensor]:
    """``(latents, labels)`` of the DiT's training images, each followed by its flip when ``hflip``;
    every process encodes its share and gets everyone's."""
    latents, labels = [], []
    for batch, y in _batches(images, counts.batch_size, torch.device(device), shards):
        latents.append(encode(batch))
        labels.append(y)
        if counts.hflip:
            latents.append(encode(batch.flip(-1)))
            labels.append(y)
    return shards.gather(torch.cat(latents)), shards.gather(torch.cat(labels))


def count_classes(labels: Tensor) -> int | None:
    """``max(label) + 1``, or ``None`` for unlabelled data (no labels, or only ``-1``)."""
    return int(labels.max()) + 1 if labels.numel() and int(labels.max()) >= 0 else None


def agreement_applies(setting: bool | None, class_names: Sequence[str] | None, known: Sequence[str]) -> bool:
    """Whether class agreement is measured: as set, or (``None``) when the data's classes are the ones
    the classifier knows (``known``: Fashion-MNIST's for the shipped network)."""
    if setting is not None:
        return setting
    return class_names is not None and list(class_names) == list(known)


def dit_tail_loss(history: Sequence[float], steps: int) -> float:
    """The DiT's final loss at a budget of ``steps``: the mean of the last tenth of its steps."""
    tail = history[max(0, steps - max(1, steps // 10)) : steps]
    return sum(tail) / len(tail)


def generate_and_score(
    latents: Tensor,
    labels: Tensor,
    decode: Callable[[Tensor], Tensor],
    reference_features: Tensor,
    extractor: FeatureExtractor,
    protocol: GenerationProtocol,
    counts: GenerationCounts,
    *,
    classifier: SampleClassifier | None = None,
    dit_steps: Sequence[int] = (),
    keep_samples: int = 0,
    device: torch.device | str = "cpu",
    shards: Shards = ONE_PROCESS,
) -> GenerationRun:
    """Train the protocol's DiT on ``latents`` once up to the largest of ``dit_steps`` (default:
    ``protocol.train_steps``) and score the samples of the snapshot at each budget.

    ``classifier`` (e.g. the fmnist network) measures class agreement; when it is ``extractor``
    itself its logits come from the features already extracted. Every process trains the same DiT
    (no process waits on another), draws the whole sample set as one process would and decodes its
    own share, so the numbers do not depend on the number of processes.
    """
    budgets = sorted(set(dit_steps or [protocol.train_steps]))
    if budgets[0] < 1:
        raise ConfigError(f"DiT budgets must be positive step counts, got {budgets}")
    protocol = dataclasses.replace(protocol, train_steps=budgets[-1], seed=protocol.protocol_seed)
    device = torch.device(device)
    normalizer = LatentNormalizer.fit(latents)
    num_classes = count_classes(labels)
    if num_classes is None:  # unlabelled data: nothing to agree with
        classifier = None
    count = protocol.num_samples
    sample_labels = torch.arange(count) % num_classes if num_classes else None
    share = list(shards.share(count))
    results: list[GenerationResult] = []
    clock = [time.perf_counter()]

    @torch.no_grad()
    def score(step: int, dit: DiT) -> None:
        trained = time.perf_counter()
        samples = sample_latents(dit, protocol, normalizer, sample_labels, num_samples=count)[share]
        features: list[Tensor] = []
        logits: list[Tensor] = []
        shown: list[Tensor] = []
        for chunk in samples.split(counts.batch_size):
            images01 = denormalize(decode(chunk.to(device)))
            features.append(extractor(images01))
            if classifier is not None and classifier is not extractor:
                logits.append(classifier.logits(images01))
            kept = sum(part.shape[0] for part in shown)
            shown.append(images01[: max(0, keep_samples - kept)])
        all_features = shards.gather(torch.cat(features)).double()
        agreement_logits = None
        if classifier is not None and classifier is extractor:
            agreement_logits = classifier.logits_from_features(all_features.float())
        elif classifier is not None:
            agreement_logits = shards.gather(torch.cat(logits))
        scores = score_samples(
            all_features,
            reference_features.to(all_features.device),
            seeded_generator(protocol.protocol_seed, "scores"),
            agreement_logits,
            # the shares are contiguous and in rank order: the gathered samples are the first ones
            None
            if agreement_logits is None or sample_labels is None
            else sample_labels[: len(agreement_logits)],
        )
        results.append(
            GenerationResult(
                dit_steps=step,
                scores=scores,
                dit_loss=float("nan"),  # filled in below, once the losses are known
                samples01=torch.cat(shown) if keep_samples > 0 else None,
                dit_seconds=trained - clock[0],
                sample_seconds=time.perf_counter() - trained,
            )
        )
        clock[0] = time.perf_counter()

    with torch.enable_grad():
        _, history = train_latent_dit(
            latents,
            labels,
            protocol,
            normalizer=normalizer,
            num_classes=num_classes,
            snapshot_steps=budgets,
            on_snapshot=score,
        )
    results = [dataclasses.replace(r, dit_loss=dit_tail_loss(history, r.dit_steps)) for r in results]
    return GenerationRun(results, normalizer, history, num_classes)


def reference_features_of(
    extractor: FeatureExtractor,
    images: Dataset,
    reference_id: str,
    protocol: GenerationProtocol,
    counts: GenerationCounts,
    image_size: int,
) -> Tensor:
    """Features of the protocol's reference images, from the reference-statistics cache when present
    (keyed by ``reference_id``, the protocol seed that drew them, the extractor and the sizes)."""

    def images01() -> Iterator[Tensor]:
        for batch in DataLoader(images, batch_size=counts.batch_size, shuffle=False, num_workers=0):
            yield denormalize(batch["image"])

    return cached_reference_features(
        extractor,
        f"{reference_id}|protocol_seed={protocol.protocol_seed}",
        images01,
        num_images=len(cast(Sized, images)),
        image_size=image_size,
    )


def evaluate_generation(
    encode: Callable[[Tensor], Tensor],
    decode: Callable[[Tensor], Tensor],
    eval_dataset: EvalDataset,
    extractor: FeatureExtractor,
    protocol: GenerationProtocol,
    counts: GenerationCounts = DEFAULT_COUNTS,
    *,
    reference_id: str,
    image_size: int,
    classifier: SampleClassifier | None = None,
    dit_steps: Sequence[int] = (),
    keep_samples: int = 0,
    device: torch.device | str = "cpu",
    shards: Shards = ONE_PROCESS,
) -> GenerationRun:
    """The whole protocol on one tokenizer: draw, encode, train the DiT, sample, decode and score.

    Args:
        encode, decode: the frozen tokenizer (normalised images -> latents -> normalised images).
        eval_dataset: ``eval_dataset(split, n)``, the first ``n`` images of ``"train"`` / ``"val"``.
        extractor: the features gFD and KID are computed on.
        protocol: the DiT spec, budget and seed (``seed=None`` means 0 here; the callback fills in
            the run's seed first).
        counts: image counts and batch size (:class:`GenerationCounts`).
        reference_id: names the data precisely for the reference-feature cache
            (:func:`~vtp_lightning.metrics.reference_statistics.data_id`).
        image_size: the images' side, part of the cache key.
        classifier: measures class agreement (``None``: not measured); see :func:`generate_and_score`.
        dit_steps: DiT budgets scored from one DiT run (default: ``protocol.train_steps``).
        keep_samples: how many decoded samples each result keeps for a picture.
        device, shards: where the tokenizer runs, and how work is shared out under DDP.
    """
    protocol = dataclasses.replace(protocol, seed=protocol.protocol_seed)
    started = time.perf_counter()
    training = draw_protocol_images(eval_dataset, "train", counts.train_images, counts, protocol)
    latents, labels = encode_training_latents(encode, training, counts, device, shards)
    encode_seconds = time.perf_counter() - started
    reference = draw_protocol_images(eval_dataset, "val", counts.reference_images, counts, protocol)
    reference_features = reference_features_of(
        extractor, reference, reference_id, protocol, counts, image_size
    )
    run = generate_and_score(
        latents,
        labels,
        decode,
        reference_features,
        extractor,
        protocol,
        counts,
        classifier=classifier,
        dit_steps=dit_steps,
        keep_samples=keep_samples,
        device=device,
        shards=shards,
    )
    run.encode_seconds = encode_seconds
    return run
