"""The DiT-budget curve: gFD (and class agreement) against the protocol's DiT training steps.

The protocol's DiT budget should be where the ranking of two tokenizers has settled. This reads
the rows ``python -m vtp_lightning.protocol_eval`` wrote for two or more tokenizers (one grid
budget, several protocol seeds, several DiT budgets), and draws per tokenizer the mean over protocol
seeds with its 95 % t band, plus the paired difference of each tokenizer against AE-only (same
protocol seed: common random numbers) with its interval. A table goes next to the figure.

    python -m vtp_lightning.report.dit_budget runs/dit-budget/protocol_eval.jsonl --out docs/results
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from vtp_lightning.errors import DataError, VTPError
from vtp_lightning.grid_layout import cell_in_path
from vtp_lightning.report.aggregate import combination_order
from vtp_lightning.report.figures.common import FigureInfo, new_figure, save, style
from vtp_lightning.report.intervals import BASELINE, Interval, display_name, t_interval

NAME = "dit_budget_curve"
METRICS = {
    "fd": "gFD (fmnist-net features), lower is better",
    "class_agreement": "class agreement, higher is better",
}


def combination_of(checkpoint: str) -> str:
    """``runs/g/clip_ssl_ae/1x/seed0/checkpoints/last.ckpt`` -> ``clip_ssl_ae`` (else the file's stem)."""
    cell = cell_in_path(checkpoint)
    return cell.combination if cell is not None else Path(checkpoint).stem


def curves(rows: Sequence[Mapping], field: str) -> dict[str, dict[int, Interval]]:
    """combination -> DiT steps -> interval over protocol seeds."""
    values: dict[str, dict[int, list[float]]] = {}
    for row in rows:
        if row.get(field) is not None:
            values.setdefault(combination_of(row["checkpoint"]), {}).setdefault(row["dit_steps"], []).append(
                row[field]
            )
    return {c: {s: t_interval(v) for s, v in sorted(by_steps.items())} for c, by_steps in values.items()}


def paired_curves(
    rows: Sequence[Mapping], field: str, baseline: str = BASELINE
) -> dict[str, dict[int, Interval]]:
    """combination -> DiT steps -> interval of (combination - baseline), paired by protocol seed."""
    table: dict[tuple[str, int], dict[int, float]] = {}
    for row in rows:
        if row.get(field) is not None:
            table.setdefault((combination_of(row["checkpoint"]), row["dit_steps"]), {})[
                row["protocol_seed"]
            ] = row[field]
    result: dict[str, dict[int, Interval]] = {}
    for (combination, steps), by_seed in sorted(table.items()):
        reference = table.get((baseline, steps))
        if combination == baseline or not reference:
            continue
        seeds = sorted(set(by_seed) & set(reference))
        if seeds:
            result.setdefault(combination, {})[steps] = t_interval([by_seed[s] - reference[s] for s in seeds])
    return result


def plot_dit_budget(rows: Sequence[Mapping], out_dir: Path) -> FigureInfo:
    fields = [f for f in METRICS if any(row.get(f) is not None for row in rows)]
    differences = paired_curves(rows, "fd")
    figure, axes = new_figure(panels=len(fields) + (1 if differences else 0), width=5.0, height=4.2)
    for ax, field in zip(axes, fields):
        data = curves(rows, field)
        for combination in combination_order(data):
            _band(ax, data[combination], display_name(combination), style(combination))
        ax.set_xlabel("DiT training steps")
        ax.set_ylabel(METRICS[field])
        ax.set_title(f"{METRICS[field].split(',')[0]} vs DiT budget", fontsize=9)
    if differences:
        ax = axes[-1]
        for combination in combination_order(differences):
            _band(ax, differences[combination], f"{display_name(combination)} − AE-only", style(combination))
        ax.axhline(0.0, color="black", linewidth=0.8)
        ax.set_xlabel("DiT training steps")
        ax.set_ylabel("gFD difference, paired by protocol seed (below 0: better than AE-only)")
        ax.set_title("Has the ranking settled?", fontsize=9)
    for ax in axes:
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="small")
    figure.suptitle("The protocol's DiT budget: means and 95 % t bands over protocol seeds")
    return save(NAME, figure, axes, out_dir)


def _band(ax, data: Mapping[int, Interval], label: str, look: Mapping[str, str]) -> None:
    steps = sorted(data)
    means = [data[s].mean for s in steps]
    ax.plot(steps, means, label=label, color=look["color"], marker=look["marker"])
    if all(data[s].low is not None for s in steps):
        ax.fill_between(
            steps, [data[s].low for s in steps], [data[s].high for s in steps], color=look["color"], alpha=0.2
        )


def _cell(interval: Interval) -> str:
    if interval.low is None or interval.high is None:
        return f"{interval.mean:.4g}"
    return f"{interval.mean:.4g} [{interval.low:.4g}, {interval.high:.4g}]"


def budget_table(rows: Sequence[Mapping]) -> str:
    fd, agreement, difference = curves(rows, "fd"), curves(rows, "class_agreement"), paired_curves(rows, "fd")
    header = ["tokenizer", "DiT steps", "protocol seeds", "gFD", "class agreement", "gFD − AE-only (paired)"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for combination in combination_order(fd):
        for steps, interval in fd[combination].items():
            paired = difference.get(combination, {}).get(steps)
            share = agreement.get(combination, {}).get(steps)
            cells = [
                display_name(combination),
                str(steps),
                str(interval.n),
                _cell(interval),
                _cell(share) if share else "–",
                _cell(paired) if paired else "–",
            ]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m vtp_lightning.report.dit_budget",
        description="Draw gFD and class agreement against the DiT budget from protocol_eval's JSON lines.",
    )
    parser.add_argument(
        "rows", type=Path, help="JSON lines written by python -m vtp_lightning.protocol_eval --out"
    )
    parser.add_argument("--out", type=Path, default=Path("docs/results"), help="default: docs/results")
    args = parser.parse_args(argv)
    try:
        if not args.rows.is_file():
            raise DataError(
                f"{args.rows} does not exist; run python -m vtp_lightning.protocol_eval --out first"
            )
        rows = [json.loads(line) for line in args.rows.read_text().splitlines() if line.strip()]
        if not rows:
            raise DataError(f"{args.rows} holds no rows")
        args.out.mkdir(parents=True, exist_ok=True)
        info = plot_dit_budget(rows, args.out)
        table = budget_table(rows)
        (args.out / f"{NAME}.md").write_text(
            "# DiT-budget curve\n\nMean over protocol seeds with its 95 % t interval; the last column pairs each "
            "tokenizer with AE-only under the same protocol seed.\n\n"
            + table
            + f"\n\n![{NAME}]({info.path.name})\n"
        )
    except VTPError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(table)
    print(f"wrote {info.path}")
    print(f"wrote {args.out / f'{NAME}.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
