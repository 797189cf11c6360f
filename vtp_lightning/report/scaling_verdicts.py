"""The scaling curve's quotable sentences, each built from a paired interval alone.

Saturation: a budget step is an *improvement* only when the interval of the paired gFD change lies
wholly below 0. A combination "stops improving after X FLOPs" when, from the step that starts at X
on, no step is an improvement (worsening when the interval lies above 0, otherwise unresolved);
"no saturation up to Y FLOPs" when its last step is still an improvement. Steps with one paired
seed have no interval and take no part.
"""

from __future__ import annotations

from collections.abc import Sequence

from vtp_lightning.report.intervals import CONFIDENCE, Interval, display_name
from vtp_lightning.report.scaling_curve import Change, Resolution, SlopeComparison


def flops_text(value: float) -> str:
    return f"{value:.2e}"


def interval_text(interval: Interval) -> str:
    if interval.low is None or interval.high is None:
        return f"{interval.mean:+.3g} (no interval: {interval.n} seed)"
    return f"{interval.mean:+.3g} [{interval.low:+.3g}, {interval.high:+.3g}]"


def level_text(interval: Interval) -> str:
    """A mean with its interval (no signs: a level, not a difference)."""
    if interval.low is None or interval.high is None:
        return f"{interval.mean:.3g}"
    return f"{interval.mean:.3g} [{interval.low:.3g}, {interval.high:.3g}]"


def _improves(change: Change) -> bool:
    return change.interval.high is not None and change.interval.high < 0


def saturation_verdict(combination: str, changes: Sequence[Change], metric: str = "gFD") -> str:
    name = display_name(combination)
    resolved = [c for c in changes if c.interval.low is not None]
    if not resolved:
        return f"{name}: no budget step with 2 or more paired seeds, so no saturation verdict."
    seeds = f"{CONFIDENCE:.0%} t interval over {resolved[-1].interval.n} paired seeds"
    if _improves(resolved[-1]):
        last = resolved[-1]
        return (
            f"{name} generation: no saturation up to {flops_text(last.after)} FLOPs: {metric} still falls by "
            f"{interval_text(last.interval)} from {flops_text(last.before)} to {flops_text(last.after)} FLOPs ({seeds})."
        )
    first = len(resolved)
    while first > 0 and not _improves(resolved[first - 1]):
        first -= 1
    stop = resolved[first]
    span = f"from {flops_text(stop.before)} to {flops_text(stop.after)} FLOPs its {metric}"
    if stop.interval.low is not None and stop.interval.low > 0:
        how = f"{span} worsens by {interval_text(stop.interval)}"
    else:
        how = f"{span} changes by {interval_text(stop.interval)}, an interval that includes 0 (no resolved improvement)"
    return f"{name} generation stops improving after {flops_text(stop.before)} FLOPs: {how} ({seeds})."


def slope_verdict(slopes: SlopeComparison | None, baseline: str, other: str, metric: str = "gFD") -> str:
    a, o = display_name(baseline), display_name(other)
    if slopes is None:
        return f"{o} vs {a} slope: no budget step both reached with 2 or more paired seeds."
    d = slopes.difference
    where = f"Over the last budget step ({slopes.low:g}x → {slopes.high:g}x)"
    per = f"{metric} per doubling of FLOPs"
    if d.excludes_zero():
        how = "falls faster than" if d.mean < 0 else "falls slower (or rises faster) than"
        outcome = f"{o}'s {metric} {how} {a}'s"
    else:
        outcome = "the slopes do not differ resolvably (the interval includes 0)"
    return (
        f"{where}, {o}'s slope is {interval_text(slopes.other)} and {a}'s {interval_text(slopes.baseline)} {per}; "
        f"difference ({o} − {a}) {interval_text(d)} ({CONFIDENCE:.0%} t, {d.n} paired seeds): {outcome}."
    )


def resolution_sentence(found: Resolution, metric: str = "gFD") -> str:
    if found.half_width is None:
        return f"Resolution: no paired comparison with 2 or more seeds, so none can be stated for {metric}."
    protocol = (
        f" The protocol alone moves one draw by SD {found.protocol_sd:.3g} (from the {found.protocol_cells} cells"
        " with two or more draws)."
        if found.protocol_sd is not None
        else " No cell has two protocol draws, so the protocol's own SD is not measured here."
    )
    return (
        f"Resolution: with {found.n} paired tokenizer seeds, the smallest {metric} difference this design resolves at "
        f"{CONFIDENCE:.0%} is ±{found.half_width:.3g} (t with {found.n - 1} df on the mean variance of "
        f"{found.comparisons} paired comparisons).{protocol}"
    )
