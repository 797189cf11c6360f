"""Bit-identical training check: dump every logged loss of a short one-thread fit, compare two dumps.

A refactor of the training step must not change a single bit of what it computes. This runs the real
CLI (``lightning fit --config experiments/clip_ssl_ae.yaml``) for a few steps on one CPU thread, with
the evaluation callbacks and checkpoints off and every step logged, and writes each step's logged
``train/`` values (every loss term and what is logged with them) to JSON; ``compare`` reports the largest relative difference between two dumps.

    python scripts/loss_equality.py run /tmp/before.json        # in the old tree (cwd = its root)
    python scripts/loss_equality.py run /tmp/after.json         # in the new tree
    python scripts/loss_equality.py compare /tmp/before.json /tmp/after.json

``compare`` exits 1 when the dumps differ in any value or in which values were logged.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
import tempfile
from pathlib import Path


def run(out: Path, steps: int, config: str) -> None:
    """Fit ``steps`` steps through the CLI on one thread and dump the logged losses to ``out``."""
    import torch

    torch.set_num_threads(1)
    from vtp_lightning.cli import main

    with tempfile.TemporaryDirectory(prefix="loss-equality-") as root:
        argv = [
            "fit",
            "--config",
            config,
            "--trainer.max_steps",
            str(steps),
            "--trainer.log_every_n_steps",
            "1",
            "--trainer.callbacks=[]",  # no evaluation callbacks: only the training step runs
            "--trainer.enable_checkpointing",
            "false",
            "--trainer.enable_progress_bar",
            "false",
            "--trainer.default_root_dir",
            root,
            "--data.num_workers",
            "0",
        ]
        if main(argv) != 0:
            sys.exit(f"error: the fit failed: lightning {' '.join(argv)}")
        losses = read_losses(Path(root) / "metrics.csv")
    if len(losses) != steps:
        sys.exit(f"error: {len(losses)} logged steps in the metrics, expected {steps}")
    out.write_text(json.dumps({"config": config, "steps": steps, "losses": losses}, indent=1))
    print(f"{sum(len(v) for v in losses.values())} loss values over {steps} steps -> {out}")


def read_losses(metrics: Path) -> dict[str, dict[str, float]]:
    """``{step: {name: value}}`` of every non-empty ``train/`` column of a CSVLogger file: the losses and
    the terms logged with them (logit scale, teacher temperature and momentum, target entropies)."""
    losses: dict[str, dict[str, float]] = {}
    with metrics.open(newline="") as f:
        for row in csv.DictReader(f):
            values = {k: float(v) for k, v in row.items() if k.startswith("train/") and v not in ("", None)}
            if values:
                losses.setdefault(row["step"], {}).update(values)
    return losses


def compare(before: Path, after: Path) -> int:
    """Print the largest relative difference over every logged loss; 1 when any value differs."""
    a, b = (json.loads(p.read_text())["losses"] for p in (before, after))
    keys_a = {(s, k) for s, row in a.items() for k in row}
    keys_b = {(s, k) for s, row in b.items() for k in row}
    if keys_a != keys_b:
        print(
            f"different logged values: only before {sorted(keys_a - keys_b)}, only after {sorted(keys_b - keys_a)}"
        )
        return 1
    worst, where = 0.0, None
    for step, name in sorted(keys_a):
        x, y = a[step][name], b[step][name]
        rel = 0.0 if x == y else abs(x - y) / max(abs(x), abs(y), math.ulp(0.0))
        if rel > worst:
            worst, where = rel, f" ({name} at step {step})"
    print(f"{len(keys_a)} loss values over {len(a)} steps; max relative difference {worst:.3g}{where or ''}")
    return 0 if worst == 0.0 else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run_p = sub.add_parser("run", help="fit and dump the logged losses")
    run_p.add_argument("out", type=Path)
    run_p.add_argument("--steps", type=int, default=12)
    run_p.add_argument("--config", default="experiments/clip_ssl_ae.yaml")
    cmp_p = sub.add_parser("compare", help="max relative difference between two dumps")
    cmp_p.add_argument("before", type=Path)
    cmp_p.add_argument("after", type=Path)
    args = parser.parse_args()
    if args.command == "run":
        run(args.out, args.steps, args.config)
        return 0
    return compare(args.before, args.after)


if __name__ == "__main__":
    sys.exit(main())
