"""The generation protocol on a saved tokenizer, outside a training run.

The DiT-budget curve and the noise floor evaluate finished tokenizers again with several protocol
seeds and DiT budgets; this is that evaluation, the same maths as
:class:`callbacks.GenerationEvaluation` on one process: images drawn by the protocol seed, the DiT
trained once up to the largest budget with snapshots along the way (a snapshot at step ``k`` is a
``k``-step protocol, see :func:`train_latent_dit`), samples scored by
:func:`~vtp_lightning.metrics.generation_scores.score_samples` with the fmnist network.

    python -m vtp_lightning.protocol_eval runs/x/ae/1x/seed0/checkpoints/last.ckpt --seeds 0 1 2 --dit-steps 250 500 1000
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Subset
from torchvision.utils import save_image

from vtp_lightning.data import VTPDataModule
from vtp_lightning.data.normalization import denormalize
from vtp_lightning.errors import ConfigError, VTPError
from vtp_lightning.metrics.fmnist_extractor import FashionMNISTFeatureExtractor
from vtp_lightning.metrics.generation import (
    GenerationProtocol,
    LatentNormalizer,
    protocol_subset,
    sample_latents,
    seeded_generator,
    train_latent_dit,
)
from vtp_lightning.metrics.generation_scores import score_samples
from vtp_lightning.models.autoencoder import VTPAutoencoder


@dataclasses.dataclass(frozen=True)
class ProtocolImages:
    """How many images the protocol draws, and from which prefix of each split."""

    train_images: int = 1000
    reference_images: int = 500
    pool_images: int = 10000
    hflip: bool = True
    batch_size: int = 250


def _drawn(datamodule: VTPDataModule, split: str, count: int, images: ProtocolImages, protocol) -> Dataset:
    pool = datamodule.eval_dataset(split, images.pool_images)
    return Subset(pool, protocol_subset(len(pool), count, protocol, split))


def _batches(dataset: Dataset, batch_size: int):
    for batch in DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=0):
        yield batch["image"], batch["label"]


@torch.no_grad()
def evaluate_protocol(
    autoencoder: VTPAutoencoder,
    protocol: GenerationProtocol,
    dit_steps: Sequence[int] | None = None,
    images: ProtocolImages = ProtocolImages(),
    datamodule: VTPDataModule | None = None,
    extractor: FashionMNISTFeatureExtractor | None = None,
    grid_path: Path | None = None,
) -> list[dict[str, Any]]:
    """One row of scores per DiT budget in ``dit_steps`` (default: ``protocol.train_steps``).

    ``grid_path``: save the first 100 samples of the largest budget there as a PNG, a column per class.
    """
    steps = sorted(set(dit_steps or [protocol.train_steps]))
    if steps[0] < 1:
        raise ConfigError(f"DiT budgets must be positive step counts, got {steps}")
    protocol = dataclasses.replace(protocol, train_steps=steps[-1], seed=protocol.protocol_seed)
    datamodule = datamodule or VTPDataModule(num_workers=0)
    extractor = extractor or FashionMNISTFeatureExtractor()
    autoencoder = autoencoder.eval()
    started = time.perf_counter()

    latents, labels = [], []
    for batch, y in _batches(
        _drawn(datamodule, "train", images.train_images, images, protocol), images.batch_size
    ):
        latents.append(autoencoder.encode(batch))
        labels.append(y)
        if images.hflip:
            latents.append(autoencoder.encode(batch.flip(-1)))
            labels.append(y)
    latents, labels = torch.cat(latents), torch.cat(labels)
    normalizer = LatentNormalizer.fit(latents)
    reference = _drawn(datamodule, "val", images.reference_images, images, protocol)
    reference_features = torch.cat(
        [extractor(denormalize(batch)).double() for batch, _ in _batches(reference, images.batch_size)]
    )
    num_classes = int(labels.max()) + 1
    sample_labels = torch.arange(protocol.num_samples) % num_classes
    encode_seconds = time.perf_counter() - started

    rows: list[dict[str, Any]] = []
    history: list[float] = []
    clock = {"dit": time.perf_counter()}

    def score(step: int, ema: torch.nn.Module) -> None:
        trained = time.perf_counter()
        latents_out = sample_latents(ema, protocol, normalizer, sample_labels)
        features, shown = [], []
        for chunk in latents_out.split(images.batch_size):
            images01 = denormalize(autoencoder.decode(chunk))
            features.append(extractor(images01).double())
            shown.append(images01[: max(0, 100 - sum(len(s) for s in shown))])
        features = torch.cat(features)
        if grid_path is not None and step == steps[-1]:
            grid_path.parent.mkdir(parents=True, exist_ok=True)
            save_image(torch.cat(shown), grid_path, nrow=num_classes, padding=1, pad_value=1.0)
        scores = score_samples(
            features,
            reference_features,
            seeded_generator(protocol.protocol_seed, "scores"),
            extractor.logits_from_features(features.float()),
            sample_labels,
        )
        rows.append(
            {
                "dit_steps": step,
                "protocol_seed": protocol.protocol_seed,
                **scores.to_dict(),
                "dit_seconds": round(trained - clock["dit"], 2),
                "sample_seconds": round(time.perf_counter() - trained, 2),
                "encode_seconds": round(encode_seconds, 2),
            }
        )
        clock["dit"] = time.perf_counter()

    with torch.enable_grad():
        _, history = train_latent_dit(
            latents,
            labels,
            protocol,
            normalizer=normalizer,
            num_classes=num_classes,
            snapshot_steps=steps,
            on_snapshot=score,
        )
    for row in rows:
        tail = history[max(0, row["dit_steps"] - max(1, row["dit_steps"] // 10)) : row["dit_steps"]]
        row["dit_loss"] = sum(tail) / len(tail)
    return rows


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m vtp_lightning.protocol_eval",
        description="Evaluate the generation protocol on saved tokenizers for several protocol seeds and "
        "DiT budgets; prints one JSON line per (checkpoint, seed, DiT budget).",
    )
    parser.add_argument("checkpoints", nargs="+", type=Path, help="tokenizer .ckpt files or exported folders")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0], help="protocol seeds (default: 0)")
    parser.add_argument("--dit-steps", nargs="+", type=int, help="DiT budgets (default: the protocol's)")
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--config",
        type=Path,
        help="take the protocol and image counts from this experiment config's GenerationEvaluation "
        "(what the grid cells used), e.g. experiments/ae.yaml",
    )
    source.add_argument(
        "--protocol", type=Path, help="JSON of GenerationProtocol fields (default: its defaults)"
    )
    parser.add_argument(
        "--train-images", type=int, help=f"default {ProtocolImages.train_images} (or the config's)"
    )
    parser.add_argument("--reference-images", type=int, help=f"default {ProtocolImages.reference_images}")
    parser.add_argument(
        "--grid", type=Path, help="save a sample grid (largest budget, first checkpoint and seed) here"
    )
    parser.add_argument(
        "--out",
        type=Path,
        help="append the JSON lines to this file too; rows already in it are skipped (resume)",
    )
    return parser


def protocol_from_config(path: Path) -> tuple[dict[str, Any], ProtocolImages]:
    """The GenerationEvaluation settings of an experiment config (``__base__`` chain merged)."""
    from vtp_lightning.config_files import load_config

    callbacks = (load_config(path).get("trainer") or {}).get("callbacks") or []
    for callback in callbacks:
        if str(callback.get("class_path", "")).endswith("GenerationEvaluation"):
            options = callback.get("init_args") or {}
            defaults = ProtocolImages()
            images = ProtocolImages(
                train_images=options.get("train_images", defaults.train_images),
                reference_images=options.get("reference_images", defaults.reference_images),
                pool_images=options.get("pool_images", defaults.pool_images),
                hflip=options.get("hflip", defaults.hflip),
            )
            return dict(options.get("protocol") or {}), images
    raise ConfigError(f"{path} has no callbacks.GenerationEvaluation; pass --protocol instead")


def _done_rows(path: Path | None) -> set[tuple[str, int, int]]:
    """(checkpoint, protocol seed, DiT steps) already in ``path``; checkpoints as absolute paths, so a
    row written with ``runs/...`` is found again from ``/abs/runs/...`` (and back)."""
    if path is None or not path.is_file():
        return set()
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {(os.path.abspath(row["checkpoint"]), row["protocol_seed"], row["dit_steps"]) for row in rows}


def load_protocol(
    path: Path | None, fields: dict[str, Any] | None = None, **overrides: Any
) -> GenerationProtocol:
    fields = dict(fields or {})
    if path is not None:
        fields.update(json.loads(path.read_text()))
    known = {f.name for f in dataclasses.fields(GenerationProtocol)}
    unknown = sorted(set(fields) - known)
    if unknown:
        raise ConfigError(f"{path}: unknown GenerationProtocol fields {unknown}; known: {sorted(known)}")
    return GenerationProtocol(**{**fields, **overrides})


def main(argv: Sequence[str] | None = None) -> int:
    from vtp_lightning.weights.pretrained import load_autoencoder

    args = _parser().parse_args(argv)
    try:
        fields, images = protocol_from_config(args.config) if args.config else ({}, ProtocolImages())
        counts = {"train_images": args.train_images, "reference_images": args.reference_images}
        images = dataclasses.replace(images, **{k: v for k, v in counts.items() if v is not None})
        done = _done_rows(args.out)
        for checkpoint in args.checkpoints:
            autoencoder = None
            for seed in args.seeds:
                protocol = load_protocol(args.protocol, fields, seed=seed)
                budgets = args.dit_steps or [protocol.train_steps]
                if all((os.path.abspath(checkpoint), seed, steps) in done for steps in budgets):
                    print(f"skip {checkpoint} protocol seed {seed}: already in {args.out}", file=sys.stderr)
                    continue
                autoencoder = autoencoder or load_autoencoder(checkpoint)
                grid, args.grid = args.grid, None  # only the first evaluation draws the grid
                for row in evaluate_protocol(autoencoder, protocol, budgets, images, grid_path=grid):
                    line = json.dumps({"checkpoint": str(checkpoint), **row})
                    print(line, flush=True)
                    if args.out:
                        with args.out.open("a") as file:
                            file.write(line + "\n")
    except VTPError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
