"""Tiny VTPTokenizer fits under FSDP2 (``FSDP2Strategy``, 2 CPU processes, gloo) or one process.

Usage: ``python fsdp_fit_script.py OUT_DIR fsdp`` (Lightning's launcher re-runs this script for rank 1).
The single-process reference is :func:`run_single`, called in the test process.

Every fit sees the same global batch at every step (4 images with captions of different lengths,
4 multi-crop rows with iBOT masks); under FSDP each rank holds half of it. Each step's loss (the
mean over ranks) and every parameter's full gradient are recorded. Three fits, all on the same
3-step schedule:

- ``straight``: 3 steps;
- ``stopped``: stopped after step 2, where ``ModelCheckpoint`` writes ``ckpt/step2.ckpt`` (a folder
  of torch DCP shards under FSDP);
- ``resumed``: ``ckpt_path`` that checkpoint, on to step 3.

Each leaves ``{name}.pt`` (rank 0): losses, gradients and the full state dict at the end.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

TINY_SIZES = Path(__file__).resolve().parents[1] / "objectives" / "conftest.py"  # the objective tests' sizes
MAX_STEPS = 3
STOP_AT = 2
GLOBAL_BATCH = 4
CAPTION_LENGTHS = (3, 8, 5, 2)  # tokens up to and including the EOT: the live-token path packs them


def tiny_sizes() -> ModuleType:
    """``tests/objectives/conftest.py`` as a module, read by path (``tests`` is not a package)."""
    if str(TINY_SIZES.parents[1]) not in sys.path:
        sys.path.insert(0, str(TINY_SIZES.parents[1]))  # tests/: that conftest imports tests/tiny_sizes.py
    tests_dir = str(TINY_SIZES.parents[1])  # it imports tests/tiny_sizes.py
    if tests_dir not in sys.path:
        sys.path.append(tests_dir)
    spec = importlib.util.spec_from_file_location("objective_tiny_sizes", TINY_SIZES)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_model() -> Any:
    """The full VTP tokenizer at the objective tests' tiny sizes, with the scale presets' speed options.

    KoLeo is off: it scores each sample against its nearest neighbour within the batch a rank holds
    (per rank, as in DINOv2, the same under DDP), so it cannot equal a single process on the global batch.
    """
    import torch

    from vtp_lightning.tokenizer import VTPTokenizer

    tiny_kwargs = tiny_sizes().tiny_kwargs

    torch.manual_seed(0)
    options = tiny_kwargs(VTPTokenizer) | {
        "koleo_weight": 0.0,
        "clip_text_live_tokens_only": True,
        "ssl_scored_tokens_only": True,
        "lr": 1e-3,
        "warmup_fraction": 0.0,
    }
    return VTPTokenizer(**options)


def global_batch() -> dict[str, Any]:
    """The objective tests' batch, its captions cut to different lengths (EOT, then padding)."""
    sizes = tiny_sizes()
    batch = sizes.build_batch(batch_size=GLOBAL_BATCH, ssl_rows=GLOBAL_BATCH, num_local=2)
    for row, length in enumerate(CAPTION_LENGTHS):
        batch["text"][row, length - 1] = sizes.EOT_TOKEN
        batch["text"][row, length:] = 0
    return batch


def rank_rows(batch: dict[str, Any], rank: int, world: int) -> dict[str, Any]:
    """Rank ``rank``'s contiguous share of every per-sample tensor (crops and masks: their dim 1)."""
    share = {}
    for key, value in batch.items():
        dim = 0 if key in ("image", "text", "label") else 1
        size = value.shape[dim] // world
        share[key] = value.narrow(dim, rank * size, size)
    return share


def run_fits(out_dir: Path, mode: str) -> None:
    import lightning.pytorch as pl
    import torch
    import torch.distributed as dist
    from lightning.pytorch.callbacks import Callback, ModelCheckpoint
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
    from torch.distributed.tensor import DTensor
    from torch.utils.data import DataLoader, Dataset

    from vtp_lightning.fsdp import FSDP2Strategy
    from vtp_lightning.weights.lightning_io import open_tensors_only_first

    torch.set_num_threads(1)

    class OwnShare(Dataset):
        """One batch per epoch: this rank's share of the global batch (the rank is known once running)."""

        def __len__(self) -> int:
            return 1

        def __getitem__(self, index: int) -> dict[str, Any]:
            if dist.is_initialized():
                return rank_rows(global_batch(), dist.get_rank(), dist.get_world_size())
            return global_batch()

    def full(t: torch.Tensor) -> torch.Tensor:
        return (t.full_tensor() if isinstance(t, DTensor) else t).detach().clone()

    class Record(Callback):
        def __init__(self) -> None:
            self.losses: dict[int, float] = {}
            self.grads: dict[int, dict[str, torch.Tensor]] = {}

        def on_before_optimizer_step(self, trainer: pl.Trainer, module: Any, optimizer: Any) -> None:
            self.grads[trainer.global_step + 1] = {
                n: full(p.grad) for n, p in module.named_parameters() if p.grad is not None
            }

        def on_train_batch_end(self, trainer: pl.Trainer, module: Any, outputs: Any, *args: Any) -> None:
            loss = outputs["loss"].detach().clone()
            if dist.is_initialized():
                dist.all_reduce(loss)
                loss /= dist.get_world_size()
            self.losses[trainer.global_step] = loss.item()

    class StopAt(Callback):
        def on_train_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
            if trainer.global_step >= STOP_AT:
                trainer.should_stop = True

    def fit(name: str, ckpt_path: Path | None = None, extra: list[Callback] = ()) -> None:
        pl.seed_everything(0, verbose=False)
        model = make_model()
        record = Record()
        trainer = pl.Trainer(
            accelerator="cpu",
            devices=2 if mode == "fsdp" else 1,
            strategy=FSDP2Strategy() if mode == "fsdp" else "auto",
            max_steps=MAX_STEPS,
            callbacks=[record, *extra],
            use_distributed_sampler=False,
            logger=False,
            enable_checkpointing=any(isinstance(c, ModelCheckpoint) for c in extra),
            enable_progress_bar=False,
            enable_model_summary=False,
            num_sanity_val_steps=0,
            limit_val_batches=0,
        )
        open_tensors_only_first(trainer.strategy)  # as the CLI does: a sharded folder is checked first
        trainer.fit(model, DataLoader(OwnShare(), batch_size=None), ckpt_path=ckpt_path)
        options = StateDictOptions(full_state_dict=True, cpu_offload=True)
        state = {k: full(v) for k, v in get_model_state_dict(model, options=options).items()}
        if trainer.is_global_zero:
            result = {"losses": record.losses, "grads": record.grads, "state": state}
            result["world_size"] = trainer.world_size
            result["sharded"] = [n for n, p in model.named_parameters() if isinstance(p, DTensor)]
            torch.save(result, out_dir / f"{name}.pt")

    fit("straight")
    if mode == "single":
        return
    checkpoint = ModelCheckpoint(
        dirpath=out_dir / "ckpt",
        filename="step{step}",
        every_n_train_steps=STOP_AT,
        save_top_k=-1,
        auto_insert_metric_name=False,
    )
    fit("stopped", extra=[checkpoint, StopAt()])
    fit("resumed", ckpt_path=out_dir / "ckpt" / f"step{STOP_AT}.ckpt")


def run_single(out_dir: Path) -> None:
    """The reference: one process, the whole global batch, no sharding."""
    run_fits(out_dir, "single")


if __name__ == "__main__":
    run_fits(Path(sys.argv[1]), sys.argv[2])
