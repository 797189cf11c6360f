"""``LatentWriter``: ``lightning predict`` writes a data set's latents in LightningDiT's layout.

Lightning's :class:`BasePredictionWriter` hands it every predicted batch on every rank. Samples are
buffered per shard (:mod:`vtp_lightning.latents.plan`: each rank owns whole shards) and a shard is
written, atomically, as soon as all its samples are in; a sample index seen twice (padding, a re-run
batch) is dropped. After the predict loop every rank waits for the others, rank 0 merges the shards'
float64 moments in shard order into ``latents_stats.pt`` and writes ``encode.json``
(:mod:`vtp_lightning.latents.layout`). A killed run leaves only whole shards; running the same command
again skips them. The output folder must be one every rank can see (a shared filesystem across nodes).
"""

from __future__ import annotations

import hashlib
import json
import os
from functools import reduce
from pathlib import Path
from typing import Any, Literal

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import BasePredictionWriter
from lightning.pytorch.utilities import rank_zero_info
from safetensors import safe_open
from safetensors.torch import save_file

from vtp_lightning.errors import ConfigError, DataError
from vtp_lightning.latents.layout import (
    LABELS,
    LATENTS,
    LATENTS_FLIP,
    RECORD_FILE,
    STATS_FILE,
    ShardInfo,
    partial_name,
    read_shard_info,
    shard_files,
    shard_name,
)
from vtp_lightning.latents.plan import ShardPlan, ShardSampler
from vtp_lightning.latents.statistics import ChannelMoments
from vtp_lightning.weights.checkpoint_file import atomic_torch_save

LatentDType = Literal["fp32", "bf16", "fp16"]
TORCH_DTYPES: dict[str, torch.dtype] = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


class LatentWriter(BasePredictionWriter):
    """Write ``latents``, ``latents_flip`` and ``labels`` shards plus their statistics to ``output_dir``.

    Args:
        output_dir: the folder to fill (created; a folder holding another encoding is refused).
        dtype: how latents are stored: ``fp32`` (exact), ``bf16`` (half the disk) or ``fp16``. The
            statistics are computed from the stored values, which are what a generator reads.
        shard_size: samples per file; a multiple of ``data.batch_size`` (LightningDiT writes 10000).
    """

    def __init__(self, output_dir: str, dtype: LatentDType = "fp32", shard_size: int = 10240) -> None:
        super().__init__(write_interval="batch")
        if dtype not in TORCH_DTYPES:
            raise ConfigError(f"LatentWriter.dtype must be one of {sorted(TORCH_DTYPES)}, got {dtype!r}")
        if shard_size < 1:
            raise ConfigError(f"LatentWriter.shard_size must be positive, got {shard_size}")
        self.output_dir = Path(output_dir)
        self.dtype = dtype
        self.shard_size = shard_size
        self.plan: ShardPlan | None = None
        self.record: dict[str, Any] = {}
        self._own: set[int] = set()
        self._buffers: dict[int, dict[int, tuple[torch.Tensor, torch.Tensor, int]]] = {}
        self.duplicates_dropped = 0
        self.shards_written: list[int] = []

    # ------------------------------------------------------------------ planning
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage == "predict":
            # the latents go to disk; Lightning would otherwise also keep every batch in a list in memory
            trainer.predict_loop.return_predictions = False

    def predict_sampler(
        self, trainer: pl.Trainer, num_samples: int, batch_size: int, source: str, image_size: int
    ) -> ShardSampler:
        """Plan the shards, find the finished ones (rank 0 looks, every rank gets its answer) and return
        this rank's sampler. Called by ``VTPDataModule.predict_dataloader``, before the weights are final
        (``init_weights`` loads at predict start), so the finished shards' tokenizer is checked at the first batch."""
        if self.shard_size % batch_size:
            raise ConfigError(
                f"LatentWriter.shard_size ({self.shard_size}) must be a multiple of data.batch_size ({batch_size}), "
                "so that a batch never spans two shards"
            )
        self.record = {
            "format": "LightningDiT ImgLatentDataset (latents, latents_flip, labels; latents_stats.pt)",
            "image_size": image_size,
            "dtype": self.dtype,
            "num_samples": num_samples,
            "shard_size": self.shard_size,
            "source": source,
        }
        plan = ShardPlan(num_samples, self.shard_size)
        answer: tuple[str, Any] = ("", None)
        if trainer.is_global_zero:
            try:
                answer = ("ok", self._finished_shards(plan))
            except (ConfigError, DataError) as exc:
                answer = (type(exc).__name__, str(exc))
        status, value = trainer.strategy.broadcast(answer, src=0)  # every rank raises, none waits forever
        if status != "ok":
            raise (ConfigError if status == "ConfigError" else DataError)(value)
        self._found_fingerprints: dict[str, str] = value
        self.plan = ShardPlan(num_samples, self.shard_size, frozenset(int(k) for k in value if k.isdigit()))
        sampler = ShardSampler(self.plan, trainer.global_rank, trainer.world_size)
        self._own = set(sampler.own_shards)
        self._buffers, self.shards_written, self.duplicates_dropped = {}, [], 0
        self._identified = False
        if self.plan.finished:
            rank_zero_info(
                f"{self.output_dir}: {len(self.plan.finished)} of {self.plan.num_shards} shards already written; "
                "encoding the rest"
            )
        return sampler

    def _finished_shards(self, plan: ShardPlan) -> dict[str, str]:
        """``{shard number or "record": fingerprint}`` of what a previous run of this plan left on disk."""
        self.output_dir.mkdir(parents=True, exist_ok=True)
        for stale in self.output_dir.glob(".latents_shard*.partial"):
            stale.unlink()  # a shard a killed run had not finished
        found: dict[str, str] = {}
        record = self.output_dir / RECORD_FILE
        if record.exists():
            try:
                found["record"] = str(json.loads(record.read_text())["fingerprint"])
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise DataError(f"{record} is not readable ({exc}); {_FIX}", where=str(record)) from exc
        for shard, path in shard_files(self.output_dir).items():
            info = read_shard_info(path)
            expected = plan.indices(shard) if shard < plan.num_shards else range(0)
            if info.shard != shard or info.first_index != expected.start or info.count != len(expected):
                raise ConfigError(f"{path} holds latents of another encoding (other data or options); {_FIX}")
            found[str(shard)] = info.fingerprint
        return found

    def _identify(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Fingerprint the encoding with the final weights; refuse finished shards of another one."""
        if self._identified:
            return
        self.record["tokenizer"] = f"{type(pl_module).__module__}.{type(pl_module).__qualname__}"
        self.record["weights_sha256"] = weights_digest(pl_module)
        identity = json.dumps(self.record, sort_keys=True)
        self.record["fingerprint"] = hashlib.sha256(identity.encode()).hexdigest()
        self.record["weights_from"] = _weights_origin(trainer, pl_module)
        for what, fingerprint in self._found_fingerprints.items():
            if fingerprint != self.record["fingerprint"]:
                where = RECORD_FILE if what == "record" else shard_name(int(what))
                raise ConfigError(
                    f"{self.output_dir / where} holds latents of another encoding (another tokenizer, its "
                    f"weights, the data or the options); {_FIX}"
                )
        self._identified = True

    def on_predict_batch_start(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        self._identify(trainer, pl_module)

    # ------------------------------------------------------------------ writing
    def write_on_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        prediction: Any,
        batch_indices: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int,
    ) -> None:
        plan = self.plan
        if plan is None:
            raise ConfigError(
                "LatentWriter needs its data from VTPDataModule.predict_dataloader (the datamodule plans the shards)"
            )
        dtype = TORCH_DTYPES[self.dtype]
        latents = prediction[LATENTS].detach().to("cpu", dtype)
        flipped = prediction[LATENTS_FLIP].detach().to("cpu", dtype)
        labels = prediction["label"].detach().cpu().tolist()
        for row, index in enumerate(prediction["index"].detach().cpu().tolist()):
            shard = plan.shard_of(index)
            pending = shard in self._own and shard not in self.shards_written
            buffer = self._buffers.setdefault(shard, {}) if pending else None
            if buffer is None or index in buffer:
                self.duplicates_dropped += 1  # another rank's sample, or one seen (or written) before
                continue
            buffer[index] = (latents[row], flipped[row], int(labels[row]))
            if len(buffer) == len(plan.indices(shard)):
                self._write_shard(shard, self._buffers.pop(shard), trainer.global_rank)

    def _write_shard(
        self, shard: int, rows: dict[int, tuple[torch.Tensor, torch.Tensor, int]], rank: int
    ) -> None:
        assert self.plan is not None
        indices = self.plan.indices(shard)
        latents = torch.stack([rows[i][0] for i in indices])
        tensors = {
            LATENTS: latents,
            LATENTS_FLIP: torch.stack([rows[i][1] for i in indices]),
            LABELS: torch.tensor([rows[i][2] for i in indices], dtype=torch.int64),
        }
        info = ShardInfo(
            shard, indices.start, len(indices), self.record["fingerprint"], ChannelMoments.of(latents)
        )
        partial = self.output_dir / partial_name(shard, rank)
        save_file(tensors, str(partial), metadata=info.to_metadata())
        os.replace(partial, self.output_dir / shard_name(shard))  # whole shards only, even after a kill
        self.shards_written.append(shard)

    # ------------------------------------------------------------------ the end: statistics and record
    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        """After the predict loop, also on a rank that had nothing left to encode (Lightning skips the
        loop and its hooks there): check the finished shards' tokenizer, wait for every rank's shards,
        then the statistics and the record from rank 0."""
        if stage != "predict" or self.plan is None:
            return
        self._identify(trainer, pl_module)
        trainer.strategy.barrier()  # every rank's shards are on disk
        if trainer.is_global_zero:
            self._write_statistics_and_record()
        trainer.strategy.barrier()
        missing = [k for k in range(self.plan.num_shards) if not (self.output_dir / shard_name(k)).exists()]
        if missing:
            raise DataError(
                f"{self.output_dir}: {len(missing)} of {self.plan.num_shards} shards were not written (first: "
                f"{shard_name(missing[0])}), e.g. because limit_predict_batches stopped early; run the same "
                "command again to encode them (written shards are kept)"
            )

    def _write_statistics_and_record(self) -> None:
        assert self.plan is not None
        files = shard_files(self.output_dir)
        if any(k not in files for k in range(self.plan.num_shards)):
            return  # reported on every rank by on_predict_epoch_end
        infos = [read_shard_info(files[k]) for k in range(self.plan.num_shards)]
        moments = reduce(ChannelMoments.combine, (info.moments for info in infos))
        mean, std = moments.mean_std()
        stats = {"mean": mean.float(), "std": std.float(), "mean_float64": mean, "std_float64": std}
        atomic_torch_save(stats, self.output_dir / STATS_FILE)
        with safe_open(str(files[0]), framework="pt", device="cpu") as f:
            latent_shape = list(f.get_slice(LATENTS).get_shape()[1:])
        record = {
            **self.record,
            "latent_shape": latent_shape,
            "num_shards": self.plan.num_shards,
            "statistics": f"{STATS_FILE}: per-channel mean and unbiased std of every stored `latents` value "
            f"({moments.count} per channel), computed in float64, stored as float32 (and float64)",
        }
        partial = self.output_dir / f".{RECORD_FILE}.partial"
        partial.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
        os.replace(partial, self.output_dir / RECORD_FILE)


_FIX = "choose a new output_dir, or delete that folder to re-encode"


def weights_digest(module: torch.nn.Module) -> str:
    """SHA-256 of the tokenizer's encode/decode weights (names, dtypes, shapes, bytes): what made the latents."""
    autoencoder = getattr(module, "autoencoder", module)
    digest = hashlib.sha256()
    for name, tensor in sorted(autoencoder.state_dict().items()):
        tensor = tensor.detach().to("cpu").contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _weights_origin(trainer: pl.Trainer, pl_module: pl.LightningModule) -> str | None:
    """The checkpoint or weights path the tokenizer was loaded from, for the record."""
    if trainer.ckpt_path:
        return str(trainer.ckpt_path)
    init_weights = getattr(pl_module, "hparams", {}).get("init_weights")
    return str(init_weights) if init_weights else None
