"""Timing helpers: medians after a warm-up, interleaved rounds, FLOPs per call, the matmul peak."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode


def median_seconds(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    """Median seconds of ``repeats`` calls (after one warm-up call), and the last result."""
    result = fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def interleaved_times(fns: dict[str, Callable[[], Any]], rounds: int) -> dict[str, list[float]]:
    """Seconds of every call over ``rounds`` rounds, each round calling every function once.

    Interleaving spreads slow phases of a shared machine over all contenders instead of one; the
    order alternates each round so neither always runs right after the other.
    """
    names = list(fns)
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names if r % 2 == 0 else reversed(names):
            start = time.perf_counter()
            fns[name]()
            times[name].append(time.perf_counter() - start)
    return times


def paired_ratios(reference: list[float], ours: list[float]) -> tuple[float, float, float]:
    """Median, lowest and highest of the per-round ratios ``reference / ours`` (rounds paired by index).

    On a shared machine one round's two steps see the same background load, so the spread of these
    ratios says how far a single run's speed-up can be trusted.
    """
    ratios = [r / o for r, o in zip(reference, ours, strict=True)]
    return statistics.median(ratios), min(ratios), max(ratios)


def flops_of(fn: Callable[[], Any]) -> int:
    """Floating-point operations of one call (matmuls, convolutions, attention), by FlopCounterMode."""
    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return counter.get_total_flops()


def matmul_peak_gflops(n: int = 2048, repeats: int = 5) -> float:
    """This process's fp32 matmul rate on ``n x n`` operands: the best of ``repeats`` timed products."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9
