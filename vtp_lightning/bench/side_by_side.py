"""This suite's full training step against a reference implementation of the same step, side by side.

The reference is the official VTP model code when ``VTP_REF`` names a local clone of it
(:mod:`vtp_lightning.bench.official_step`), otherwise the same model computed without the work this
suite shares between objectives (:class:`~vtp_lightning.bench.suite_step.UnsharedVTPTokenizer`).
Both run at the same size on the same batch, in interleaved rounds; the table gives medians, FLOPs
per step (FlopCounterMode), GFLOP/s, the share of this process's measured fp32 matmul peak, and the
speed ratio (reference time / suite time: above 1 means this suite is faster).
"""

from __future__ import annotations

import os
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from vtp_lightning.bench.sizes import BenchSize, synthetic_batch
from vtp_lightning.bench.suite_step import build_suite_model, suite_step
from vtp_lightning.bench.timing import flops_of, interleaved_times, paired_ratios


@dataclass
class Contender:
    name: str
    params: int
    step: Callable[[], dict[str, float]]
    flops: int = 0
    losses: dict[str, float] | None = None


def _trainable(model: Any) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def contenders(size: BenchSize, reference: str | None) -> list[Contender]:
    batch = synthetic_batch(size)
    ours = build_suite_model(size)
    if reference:
        from vtp_lightning.bench.official_step import build_official_model, load_official_vtp, official_step

        official = build_official_model(load_official_vtp(reference), ours)
        ref = Contender("official VTP", _trainable(official), official_step(official, ours, batch))
    else:
        unshared = build_suite_model(size, unshared=True)
        ref = Contender("unshared", _trainable(unshared), suite_step(unshared, batch))
    return [Contender("this suite", _trainable(ours), suite_step(ours, batch)), ref]


def run_side_by_side(sizes: list[BenchSize], rounds: int, peak_gflops: float) -> None:
    reference = os.environ.get("VTP_REF") or None
    print(
        f"\nfull training step, side by side (reference: {'official VTP at ' + reference if reference else 'unshared'};"
        f" fp32 matmul peak {peak_gflops:.0f} GFLOP/s)"
    )
    print(
        f"{'size':<6}{'contender':<14}{'params M':>9}{'GFLOP/step':>12}{'step s':>9}{'GFLOP/s':>9}"
        f"{'% peak':>8}{'time/ours':>10}"
    )
    for size in sizes:
        runners = contenders(size, reference)
        for c in runners:
            c.flops = flops_of(lambda c=c: setattr(c, "losses", c.step()))  # also the warm-up step
        times = interleaved_times({c.name: c.step for c in runners}, rounds)
        medians = {name: statistics.median(t) for name, t in times.items()}
        ours_s = medians[runners[0].name]
        for c in runners:
            seconds, gflop = medians[c.name], c.flops / 1e9
            rate = gflop / seconds
            print(
                f"{size.name:<6}{c.name:<14}{c.params / 1e6:>9.1f}{gflop:>12.1f}{seconds:>9.2f}{rate:>9.1f}"
                f"{100 * rate / peak_gflops:>7.0f}%{seconds / ours_s:>9.2f}x"
            )
        ref_s = medians[runners[1].name]
        middle, low, high = paired_ratios(times[runners[1].name], times[runners[0].name])
        print(
            f"{'':<6}this suite's speed-up over {runners[1].name}: {ref_s / ours_s:.2f}x (ratio of medians;"
            f" per-round ratios: median {middle:.2f}x, range {low:.2f}x-{high:.2f}x over {rounds} rounds)"
        )
        for c in runners:
            terms = ", ".join(f"{k} {v:.3f}" for k, v in sorted((c.losses or {}).items()))
            print(f"{'':<6}{c.name:<14}losses of the first step: {terms}")
