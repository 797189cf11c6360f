"""``make bench``: measured speed figures (never asserted in tests).

- the full training step side by side with a reference implementation (``VTP_REF=/path/to/VTP``
  for the official code; otherwise an unshared implementation), at the demo size and the paper's S;
- the data pipeline at the scale presets' settings, in images/s per CPU core;
- this suite's step per loss combination, tokenizer encode/decode, demo data and evaluation pieces.

Environment: ``VTP_BENCH_SIZES`` (default ``demo,S``; ``demo`` skips the heavy S size on a CPU),
``VTP_BENCH_ROUNDS`` (interleaved rounds, default 5).

    python -m vtp_lightning.bench --skip pieces
    VTP_REF=~/src/VTP VTP_BENCH_SIZES=demo make bench
"""

from __future__ import annotations

import argparse
import os

import torch

from vtp_lightning.bench.data_throughput import bench_scale_data
from vtp_lightning.bench.pieces import bench_data, bench_evaluation, bench_inference, bench_training
from vtp_lightning.bench.side_by_side import run_side_by_side
from vtp_lightning.bench.sizes import bench_sizes
from vtp_lightning.bench.timing import matmul_peak_gflops

PARTS = ["side-by-side", "scale-data", "training", "inference", "data", "evaluation"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default=os.environ.get("VTP_BENCH_SIZES", "demo,S"))
    parser.add_argument("--rounds", type=int, default=int(os.environ.get("VTP_BENCH_ROUNDS", "5")))
    parser.add_argument("--combinations", nargs="+", default=["ae", "clip_ae", "ssl_ae", "clip_ssl_ae"])
    parser.add_argument("--steps", type=int, default=3, help="timed steps per loss combination")
    parser.add_argument("--batch-size", type=int, default=None, help="override the configs' batch size")
    parser.add_argument("--skip", nargs="*", default=[], choices=PARTS)
    args = parser.parse_args(argv)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device cpu")
    if "side-by-side" not in args.skip:
        sizes = bench_sizes([s for s in args.sizes.split(",") if s])
        run_side_by_side(sizes, args.rounds, matmul_peak_gflops())
    if "scale-data" not in args.skip:
        bench_scale_data()
    if "training" not in args.skip:
        bench_training(args.combinations, args.steps, args.batch_size)
    if "inference" not in args.skip:
        bench_inference(3)
    if "data" not in args.skip:
        bench_data(10)
    if "evaluation" not in args.skip:
        bench_evaluation()


if __name__ == "__main__":
    main()
