"""This suite's own figures at the CPU-sized demo settings.

- training step time, measured FLOPs per step and achieved GFLOP/s for each loss combination;
- tokenizer encode/decode throughput;
- data pipeline throughput (training batches with multi-crop views and masks);
- the evaluation pieces: fmnist-feature extraction, linear probe fit, latent-DiT training and sampling.
"""

from __future__ import annotations

import time
from functools import partial
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from vtp_lightning.bench.timing import median_seconds
from vtp_lightning.config_files import load_config
from vtp_lightning.data import VTPDataModule
from vtp_lightning.objectives.training_step import train_step
from vtp_lightning.tokenizer import TOKENIZERS


def _model_and_data(combination: str, batch_size: int | None) -> tuple[Any, VTPDataModule]:
    config = load_config(f"experiments/{combination}.yaml")
    model_args = dict(config["model"].get("init_args", {}))
    data_args = {k: v for k, v in config["data"].items() if not isinstance(v, dict)}
    data_args["num_workers"] = 0
    if batch_size:
        data_args["batch_size"] = batch_size
        if data_args.get("ssl_batch_size"):
            data_args["ssl_batch_size"] = min(data_args["ssl_batch_size"], batch_size)
    model = TOKENIZERS[combination](**model_args)
    return model, VTPDataModule(**data_args)


def bench_training(combinations: list[str], steps: int, batch_size: int | None) -> None:
    print(f"\n{'combination':<14}{'step s':>9}{'GFLOP/step':>12}{'GFLOP/s':>10}{'img/s':>9}")
    for combination in combinations:
        model, datamodule = _model_and_data(combination, batch_size)
        batch = next(iter(datamodule.train_dataloader()))
        optimizer = model.configure_optimizers()["optimizer"]  # the module's own groups, as in a fit

        step = partial(train_step, model, batch, optimizer)
        counter = FlopCounterMode(display=False)
        with counter:
            step()
        seconds, _ = median_seconds(step, steps)
        gflop = counter.get_total_flops() / 1e9
        n = batch["image"].shape[0]
        print(f"{combination:<14}{seconds:>9.2f}{gflop:>12.1f}{gflop / seconds:>10.1f}{n / seconds:>9.1f}")


@torch.no_grad()
def bench_inference(repeats: int) -> None:
    model, datamodule = _model_and_data("clip_ssl_ae", None)
    model.eval()
    images = torch.stack([datamodule.eval_dataset("val", 256)[i]["image"] for i in range(256)])
    enc_s, latents = median_seconds(lambda: model.encode(images), repeats)
    dec_s, _ = median_seconds(lambda: model.decode(latents), repeats)
    print(
        f"\nencode: {256 / enc_s:,.0f} img/s   decode: {256 / dec_s:,.0f} img/s   latent {tuple(latents.shape[1:])}"
    )


def bench_data(batches: int) -> None:
    _, datamodule = _model_and_data("clip_ssl_ae", None)
    for workers in (0, 2):
        datamodule.num_workers = workers
        loader = iter(datamodule.train_dataloader())
        next(loader)
        start = time.perf_counter()
        for _ in range(batches):
            next(loader)
        seconds = (time.perf_counter() - start) / batches
        print(
            f"data ({workers} workers): {seconds * 1000:.0f} ms/batch of {datamodule.batch_size} with multi-crop"
        )


def bench_evaluation() -> None:
    from vtp_lightning.metrics import build_feature_extractor, linear_probe
    from vtp_lightning.metrics.generation import (
        GenerationProtocol,
        LatentNormalizer,
        sample_latents,
        train_latent_dit,
    )

    extractor = build_feature_extractor("fmnist")
    images = torch.rand(1000, 3, 32, 32)
    seconds, _ = median_seconds(lambda: extractor(images), 1)
    print(f"\nfmnist features: {1000 / seconds:,.0f} img/s")
    x, y = torch.randn(2000, 384), torch.randint(0, 10, (2000,))
    seconds, _ = median_seconds(lambda: linear_probe(x, y, x[:1000], y[:1000], steps=200), 1)
    print(f"linear probe (2000 x 384, 6 settings, 200 steps): {seconds:.1f} s")
    protocol = GenerationProtocol(train_steps=100, sampling_steps=50, num_samples=1000)
    latents, labels = torch.randn(4000, 16, 8, 8), torch.randint(0, 10, (4000,))
    normalizer = LatentNormalizer.fit(latents)
    start = time.perf_counter()
    dit, _ = train_latent_dit(latents, labels, protocol, normalizer=normalizer, num_classes=10)
    train_s = time.perf_counter() - start
    start = time.perf_counter()
    sample_latents(dit, protocol, normalizer, num_samples=1000)
    sample_s = time.perf_counter() - start
    print(
        f"latent DiT '{protocol.dit}': {protocol.train_steps / train_s:.1f} train steps/s (batch {protocol.batch_size}), "
        f"sampling 1000 x {protocol.sampling_steps} Euler steps: {sample_s:.1f} s"
    )
