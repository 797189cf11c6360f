"""The noise floor: how much of a metric's spread is tokenizer training and how much the evaluation.

``make noise COMBO=ae`` trains one cell with K tokenizer seeds, evaluates each tokenizer again
with P protocol seeds (``python -m vtp_lightning.protocol_eval``), and this module splits every
generation metric's variance with a balanced one-way random-effects ANOVA (groups = tokenizer
seeds, replicates = protocol seeds):

    MS_between = P * sum_i (mean_i - mean)^2 / (K - 1)       MS_within = sum_ij (y_ij - mean_i)^2 / (K (P - 1))
    var_protocol = MS_within                                   var_tokenizer = max(0, (MS_between - MS_within) / P)

The other metrics (rFD, PSNR, probes, zero-shot) are evaluated once per tokenizer on fixed images,
so their whole spread over tokenizer seeds is tokenizer training. The table also shows each
metric's own standard error where it has one (the kernel distance's jackknife SE): a difference
between combinations must stand out against all three.

    python -m vtp_lightning.report.noise runs/noise-ae --protocol-rows runs/noise-ae/protocol_eval.jsonl
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from vtp_lightning.errors import DataError, VTPError
from vtp_lightning.grid_layout import finished_cells
from vtp_lightning.metric_names import generation_metric_names
from vtp_lightning.report.metric_names import metric_label
from vtp_lightning.report.runs import read_cell

PROTOCOL_EXTRACTOR = "fmnist"
"""The feature extractor ``protocol_eval`` scores with (the only one it offers)."""
OWN_ERROR = {"kd": "kd_se"}
# protocol_eval row fields -> the name the training run logs them under (their own errors aside)
PROTOCOL_METRICS: dict[str, str] = {
    field: name
    for field, name in generation_metric_names(PROTOCOL_EXTRACTOR).items()
    if field not in OWN_ERROR.values()
}


@dataclass(frozen=True)
class VarianceSplit:
    """A balanced one-way random-effects ANOVA of ``values[group][replicate]``."""

    mean: float
    groups: int
    replicates: int
    ms_between: float
    ms_within: float | None

    @property
    def tokenizer_variance(self) -> float:
        if self.ms_within is None:  # one value per group: all the spread is between groups
            return self.ms_between
        return max(0.0, (self.ms_between - self.ms_within) / self.replicates)

    @property
    def protocol_variance(self) -> float | None:
        return self.ms_within


def split_variance(values: Sequence[Sequence[float]]) -> VarianceSplit:
    """``values[i][j]``: metric of tokenizer seed ``i`` under protocol seed ``j`` (equal ``j`` counts)."""
    groups = len(values)
    replicates = {len(row) for row in values}
    if groups < 2 or len(replicates) != 1 or min(replicates) < 1:
        raise DataError(
            f"the noise floor needs >= 2 tokenizer seeds with the same number of protocol seeds each, "
            f"got {[len(row) for row in values]}"
        )
    (r,) = replicates
    group_means = [statistics.fmean(row) for row in values]
    grand = statistics.fmean(group_means)
    ms_between = r * sum((m - grand) ** 2 for m in group_means) / (groups - 1)
    ms_within = None
    if r > 1:
        within = sum((y - m) ** 2 for row, m in zip(values, group_means) for y in row)
        ms_within = within / (groups * (r - 1))
    return VarianceSplit(grand, groups, r, ms_between, ms_within)


@dataclass(frozen=True)
class NoiseRow:
    metric: str
    split: VarianceSplit
    own_error: float | None = None


def protocol_rows(path: Path, dit_steps: int | None = None) -> list[dict]:
    """The rows ``protocol_eval`` wrote, at one DiT budget (default: the largest present)."""
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    if not rows:
        raise DataError(f"{path} holds no protocol evaluations; run python -m vtp_lightning.protocol_eval")
    budget = dit_steps if dit_steps is not None else max(row["dit_steps"] for row in rows)
    return [row for row in rows if row["dit_steps"] == budget]


def noise_rows(rows: Sequence[Mapping], runs_dir: Path | None = None) -> list[NoiseRow]:
    """One :class:`NoiseRow` per metric: generation metrics from ``rows`` (tokenizer x protocol seeds),
    the others from the finished cells' ``metrics.csv`` under ``runs_dir`` (tokenizer seeds only)."""
    by_checkpoint: dict[str, dict[int, Mapping]] = {}
    for row in rows:
        by_checkpoint.setdefault(row["checkpoint"], {})[row["protocol_seed"]] = row
    seeds = sorted(set.intersection(*(set(r) for r in by_checkpoint.values()))) if by_checkpoint else []
    table = []
    for field, metric in PROTOCOL_METRICS.items():
        grid = [[by_seed[s][field] for s in seeds] for by_seed in by_checkpoint.values()]
        if not seeds or any(value is None for row in grid for value in row):
            continue
        own = None
        if field in OWN_ERROR:
            own = statistics.fmean(
                by_seed[s][OWN_ERROR[field]] for by_seed in by_checkpoint.values() for s in seeds
            )
        table.append(NoiseRow(metric, split_variance(grid), own))
    if runs_dir is not None:
        cells = [read_cell(d) for d in finished_cells(runs_dir)]
        generation = set(PROTOCOL_METRICS.values())
        names = sorted({m for c in cells for m in c.evals if m not in generation and not m.endswith("_se")})
        for metric in names:
            values = [[c.evals[metric].value] for c in cells if metric in c.evals]
            if len(values) >= 2:
                table.append(NoiseRow(metric, split_variance(values)))
    return table


def _sd(variance: float | None) -> str:
    return "–" if variance is None else f"{math.sqrt(variance):.3g}"


def noise_table(table: Sequence[NoiseRow]) -> str:
    header = [
        "metric",
        "tokenizer seeds",
        "protocol seeds",
        "mean",
        "SD from tokenizer training",
        "SD from the evaluation protocol",
        "metric's own SE",
        "tokenizer share of variance",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in table:
        split = row.split
        total = split.tokenizer_variance + (split.protocol_variance or 0.0)
        share = f"{split.tokenizer_variance / total:.0%}" if total > 0 else "–"
        protocol = _sd(split.protocol_variance) if split.replicates > 1 else "– (evaluated once)"
        cells = [
            metric_label(row.metric),
            str(split.groups),
            str(split.replicates),
            f"{split.mean:.4g}",
            _sd(split.tokenizer_variance),
            protocol,
            "–" if row.own_error is None else f"{row.own_error:.3g}",
            share,
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_noise_markdown(path: Path, title: str, table: Sequence[NoiseRow], dit_steps: int | None) -> None:
    budget = f" at {dit_steps} DiT steps" if dit_steps else ""
    text = [
        f"# {title}",
        "",
        f"Variance of each metric split by a one-way random-effects ANOVA{budget}: groups are tokenizer "
        "seeds, replicates are protocol seeds (DiT initialisation, noise, sampling noise and reference set). "
        "A difference between two combinations is resolved only when it is large next to these SDs; with "
        "paired evaluation (same protocol seed for both cells) the protocol part largely cancels.",
        "",
        noise_table(table),
        "",
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(text))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m vtp_lightning.report.noise",
        description="Split every metric's variance into tokenizer training and evaluation protocol.",
    )
    parser.add_argument(
        "runs_dir", type=Path, help="the noise grid's folder: <combination>/<budget>x/seed<k>/"
    )
    parser.add_argument("--protocol-rows", type=Path, required=True, help="JSON lines of protocol_eval")
    parser.add_argument("--dit-steps", type=int, help="the DiT budget to analyse (default: the largest)")
    parser.add_argument("--out", type=Path, help="default: RUNS_DIR/report/results.md")
    args = parser.parse_args(argv)
    try:
        if not args.protocol_rows.is_file():
            raise DataError(
                f"{args.protocol_rows} does not exist; run python -m vtp_lightning.protocol_eval first"
            )
        rows = protocol_rows(args.protocol_rows, args.dit_steps)
        table = noise_rows(rows, args.runs_dir)
        out = args.out or args.runs_dir / "report" / "results.md"
        write_noise_markdown(out, f"Noise floor: {args.runs_dir.name}", table, rows[0]["dit_steps"])
    except VTPError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(noise_table(table))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
