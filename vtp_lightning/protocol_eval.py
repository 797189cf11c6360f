"""The generation protocol on a saved tokenizer, outside a training run.

The DiT-budget curve and the noise floor evaluate finished tokenizers again with several protocol
seeds and DiT budgets; this is that evaluation, the very function
(:func:`~vtp_lightning.metrics.generation_eval.evaluate_generation`) and defaults
:class:`callbacks.GenerationEvaluation` runs, on one process: images drawn by the protocol seed,
the DiT trained once up to the largest budget with snapshots along the way (a snapshot at step
``k`` is a ``k``-step protocol, see :func:`train_latent_dit`), samples scored with the fmnist
network, reference features from the same cache. A protocol seed equal to a grid cell's seed
repeats that cell's evaluation (same images, DiT draws and batch size) on the saved weights.

    python -m vtp_lightning.protocol_eval runs/x/ae/1x/seed0/checkpoints/last.ckpt --seeds 0 1 2 --dit-steps 250 500 1000
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torchvision.utils import save_image

from vtp_lightning.data import VTPDataModule
from vtp_lightning.data.templates import FASHION_MNIST_CLASSES
from vtp_lightning.errors import ConfigError, VTPError
from vtp_lightning.metrics.fmnist_extractor import FashionMNISTFeatureExtractor
from vtp_lightning.metrics.generation import GenerationProtocol
from vtp_lightning.metrics.generation_eval import (
    DEFAULT_COUNTS,
    GenerationCounts,
    agreement_applies,
    evaluate_generation,
)
from vtp_lightning.metrics.reference_statistics import data_id
from vtp_lightning.models.autoencoder import VTPAutoencoder

GRID_SAMPLES = 100


@torch.no_grad()
def evaluate_protocol(
    autoencoder: VTPAutoencoder,
    protocol: GenerationProtocol,
    dit_steps: Sequence[int] | None = None,
    counts: GenerationCounts = DEFAULT_COUNTS,
    datamodule: VTPDataModule | None = None,
    extractor: FashionMNISTFeatureExtractor | None = None,
    grid_path: Path | None = None,
) -> list[dict[str, Any]]:
    """One row of scores per DiT budget in ``dit_steps`` (default: ``protocol.train_steps``).

    ``grid_path``: save the first 100 samples of the largest budget there as a PNG, a column per class.
    """
    datamodule = datamodule or VTPDataModule(num_workers=0)
    extractor = extractor or FashionMNISTFeatureExtractor()
    autoencoder = autoencoder.eval()
    agreement = agreement_applies(None, datamodule.class_names("val"), FASHION_MNIST_CLASSES)
    run = evaluate_generation(
        autoencoder.encode,
        autoencoder.decode,
        datamodule.eval_dataset,
        extractor,
        protocol,
        counts,
        reference_id=data_id(datamodule, "val", counts.pool_images),
        image_size=datamodule.image_size,
        classifier=extractor if agreement else None,
        dit_steps=dit_steps or (),
        keep_samples=GRID_SAMPLES if grid_path is not None else 0,
    )
    largest = run.results[-1]
    if grid_path is not None and largest.samples01 is not None:
        grid_path.parent.mkdir(parents=True, exist_ok=True)
        save_image(largest.samples01, grid_path, nrow=run.num_classes or 8, padding=1, pad_value=1.0)
    return [
        {
            "dit_steps": result.dit_steps,
            "protocol_seed": protocol.protocol_seed,
            **result.scores.to_dict(),
            "dit_seconds": round(result.dit_seconds, 2),
            "sample_seconds": round(result.sample_seconds, 2),
            "encode_seconds": round(run.encode_seconds, 2),
            "dit_loss": result.dit_loss,
        }
        for result in run.results
    ]


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
        "--train-images", type=int, help=f"default {GenerationCounts.train_images} (or the config's)"
    )
    parser.add_argument(
        "--reference-images", type=int, help=f"default {GenerationCounts.reference_images} (or the config's)"
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        help=f"images per forward pass, default {GenerationCounts.batch_size} (or the config's) as in the "
        "grid's cells; it changes results in the last bits (rows written before 2026-12 used 250)",
    )
    parser.add_argument(
        "--grid", type=Path, help="save a sample grid (largest budget, first checkpoint and seed) here"
    )
    parser.add_argument(
        "--out",
        type=Path,
        help="append the JSON lines to this file too; rows already in it are skipped (resume)",
    )
    return parser


def _resolve(class_path: str) -> type | None:
    """The class a config's ``class_path`` names, or ``None`` when it names no importable class."""
    module, _, name = class_path.rpartition(".")
    try:
        found = getattr(importlib.import_module(module), name, None) if module else None
    except ImportError:
        return None
    return found if isinstance(found, type) else None


def protocol_from_config(path: Path) -> tuple[dict[str, Any], GenerationCounts]:
    """The protocol and image counts of an experiment config's generation callback (``__base__`` chain
    merged): the callback whose class is, or derives from, :class:`callbacks.GenerationEvaluation`."""
    from callbacks.generation import GenerationEvaluation  # the application floor: the callback's settings
    from vtp_lightning.config_files import load_config

    callbacks = (load_config(path).get("trainer") or {}).get("callbacks") or []
    for callback in callbacks:
        found = _resolve(str(callback.get("class_path", "")))
        if found is not None and issubclass(found, GenerationEvaluation):
            options = callback.get("init_args") or {}
            names = {f.name for f in dataclasses.fields(GenerationCounts)}
            counts = GenerationCounts(**{k: v for k, v in options.items() if k in names})
            return dict(options.get("protocol") or {}), counts
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
        fields, counts = protocol_from_config(args.config) if args.config else ({}, GenerationCounts())
        given = {
            "train_images": args.train_images,
            "reference_images": args.reference_images,
            "batch_size": args.batch_size,
        }
        counts = dataclasses.replace(counts, **{k: v for k, v in given.items() if v is not None})
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
                for row in evaluate_protocol(autoencoder, protocol, budgets, counts, grid_path=grid):
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
