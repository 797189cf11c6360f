"""A 2-process CPU DDP (gloo) fit with every evaluation callback, run by ``test_evaluation_ddp.py``.

Usage: ``python ddp_callbacks_script.py OUT_DIR``. Lightning's subprocess launcher starts rank 1 by
re-running this script, so everything a rank does happens under ``__main__``.

What it leaves in ``OUT_DIR``:

- ``logs/metrics.csv``, ``logs/summary.json`` and the image artefacts, written by rank 0;
- ``rank{r}.json`` per rank: each evaluation callback's ``last_results``, and for every call of
  ``gather`` in the callback modules the rows this rank held and the rows after the gather;
- ``final_weights.pt``: the weights the fit-end evaluations ran on (rank 0), so the test can evaluate
  them again on one process and compare.

The evaluation sets are small, the model is tiny, and each rank uses one CPU thread.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

NUM_IMAGES = 16  # every evaluation set; split 8 + 8 over the two ranks
EVAL_BATCH = 8  # one batch per rank, so the gathered order is the single-process order
MAX_STEPS = 2
RECONSTRUCTION_EVERY = 1  # reconstruction evaluates at steps 1 and 2; the others once, at fit end

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the tests' one set of tiny sizes
from tiny_sizes import TINY_LATENT_DIM, TINY_MODEL  # noqa: E402

MODEL_KWARGS = {**TINY_MODEL, "latent_dim": TINY_LATENT_DIM}
DATA_KWARGS = dict(batch_size=8, ssl_batch_size=4, num_workers=0, num_local_crops=2)


def build_evaluations() -> dict:
    """The four evaluation callbacks, by name (the test rebuilds them to evaluate on one process)."""
    from callbacks import (
        GenerationEvaluation,
        LinearProbeEvaluation,
        ReconstructionEvaluation,
        ZeroShotEvaluation,
    )
    from vtp_lightning.metrics.generation import GenerationProtocol

    protocol = GenerationProtocol(
        dit="tiny",
        train_steps=4,
        batch_size=8,
        sampling_steps=2,
        num_samples=NUM_IMAGES,
        sample_batch_size=8,
        seed=0,
    )
    return {
        "reconstruction": ReconstructionEvaluation(
            num_images=NUM_IMAGES, grid_images=4, every_n_steps=RECONSTRUCTION_EVERY, batch_size=EVAL_BATCH
        ),
        "linear_probe": LinearProbeEvaluation(
            train_images=NUM_IMAGES,
            eval_images=NUM_IMAGES,
            steps=5,
            learning_rates=(0.1,),
            weight_decays=(0.0,),
            batch_size=EVAL_BATCH,
        ),
        "zero_shot": ZeroShotEvaluation(eval_images=NUM_IMAGES, batch_size=EVAL_BATCH),
        "generation": GenerationEvaluation(
            protocol=protocol,
            train_images=NUM_IMAGES,
            reference_images=NUM_IMAGES,
            grid_images=4,
            batch_size=EVAL_BATCH,
        ),
    }


def record_gathers(modules: list, log: dict[str, list[list[int]]]) -> None:
    """Wrap each callback module's ``gather`` so the rows before and after every call are written down."""
    for module in modules:
        original = module.gather

        def recording(trainer, tensor, _original=original, _name=module.__name__):
            gathered = _original(trainer, tensor)
            log[_name].append([int(tensor.shape[0]), int(gathered.shape[0])])
            return gathered

        module.gather = recording


def main(out_dir: Path) -> None:
    import lightning.pytorch as pl
    import torch
    from lightning.pytorch.loggers import CSVLogger
    from lightning.pytorch.strategies import DDPStrategy

    import callbacks.generation
    import callbacks.linear_probe
    import callbacks.reconstruction
    import callbacks.zero_shot
    from callbacks import TrainingSummary
    from callbacks.compute import ComputeAccounting
    from vtp_lightning.data import VTPDataModule
    from vtp_lightning.tokenizer import VTPTokenizer

    torch.set_num_threads(1)
    gathers: dict[str, list[list[int]]] = defaultdict(list)
    record_gathers(
        [callbacks.reconstruction, callbacks.linear_probe, callbacks.zero_shot, callbacks.generation], gathers
    )
    pl.seed_everything(0, verbose=False)
    model = VTPTokenizer(**MODEL_KWARGS)
    evaluations = build_evaluations()
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=2,
        strategy=DDPStrategy(process_group_backend="gloo"),
        max_steps=MAX_STEPS,
        logger=CSVLogger(out_dir / "logs", name="", version=""),
        callbacks=[ComputeAccounting(), *evaluations.values(), TrainingSummary()],
        log_every_n_steps=1,
        limit_val_batches=0,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, VTPDataModule(**DATA_KWARGS))
    report = {
        "world_size": trainer.world_size,
        "results": {name: callback.last_results for name, callback in evaluations.items()},
        "gathers": dict(gathers),
    }
    (out_dir / f"rank{trainer.global_rank}.json").write_text(json.dumps(report, indent=2))
    if trainer.is_global_zero:
        torch.save(model.state_dict(), out_dir / "final_weights.pt")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
