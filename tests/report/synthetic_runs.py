"""Synthetic grid runs trees, shaped like what the grid runner and Lightning's CSV logger write.

No training: the report is tested on numbers chosen so the expected table can be written down.
"""

from __future__ import annotations

import csv
from pathlib import Path

COMBINATIONS = ("ae", "clip_ae", "clip_ssl_ae")
BUDGETS = (1, 3)
SEEDS = (0, 1)
STEPS_PER_BUDGET = 10
FLOPS_PER_STEP = 1e9


def write_cell(
    runs: Path, combination: str, budget: float, seed: int, evals: dict[str, float], done: bool = True
) -> Path:
    """A finished cell: sparse metrics.csv rows (train steps with compute, then one eval row)."""
    directory = runs / combination / f"{budget:g}x" / f"seed{seed}"
    directory.mkdir(parents=True)
    steps = int(budget * STEPS_PER_BUDGET)
    columns = ["epoch", "step", "train/loss", "compute/flops", "compute/samples", *evals]
    rows = [
        {
            "epoch": 0,
            "step": s,
            "train/loss": 1 / (s + 1),
            "compute/flops": (s + 1) * FLOPS_PER_STEP,
            "compute/samples": (s + 1) * 8,
        }
        for s in range(steps)
    ]
    rows.append({"epoch": 0, "step": steps - 1, **evals})
    with (directory / "metrics.csv").open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    if done:
        (directory / "DONE").write_text('{"exit_code": 0}\n')
    return directory


def fmnist_evals(combination: str, budget: float, seed: int) -> dict[str, float]:
    """AE's generation gets worse with compute while its reconstruction improves; CLIP ones improve."""
    understands = combination != "ae"
    evals = {
        "eval/gfd_fmnist": (30 - 3 * budget if understands else 20 + budget) + seed,
        "eval/rfd_fmnist": 10 / budget + 0.5 * seed,
        "eval/psnr": 20 + budget + 0.1 * seed,
        "eval/probe_cls_top1": (0.6 if understands else 0.4) + 0.01 * budget + 0.01 * seed,
    }
    if combination.startswith("clip"):
        evals["eval/zeroshot_top1"] = 0.5 + 0.02 * budget + 0.01 * seed
    return evals


def write_fmnist_grid(runs: Path) -> Path:
    """3 combinations x budgets 1, 3 x seeds 0, 1, evaluated with the fmnist feature net."""
    for combination in COMBINATIONS:
        for budget in BUDGETS:
            for seed in SEEDS:
                write_cell(runs, combination, budget, seed, fmnist_evals(combination, budget, seed))
    return runs
