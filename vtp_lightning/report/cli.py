"""``vtp-report RUNS_DIR [--out DIR]``: comparison figures and tables for one grid."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from vtp_lightning.errors import VTPError
from vtp_lightning.report.build import build_report


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vtp-report",
        description="Compare loss combinations across compute budgets: reads "
        "RUNS_DIR/<combination>/<budget>x/seed<k>/metrics.csv, averages seeds and writes PNG figures "
        "(generation vs FLOPs, reconstruction vs generation, understanding vs generation, bars at the "
        "largest budget), results.md and summary.json.",
    )
    parser.add_argument("runs_dir", type=Path, help="one grid's folder, e.g. runs/default")
    parser.add_argument("--out", type=Path, help="output folder (default: RUNS_DIR/report)")
    parser.add_argument(
        "--include-unfinished", action="store_true", help="also plot cells without a DONE marker"
    )
    parser.add_argument(
        "--scaling-curve",
        action="store_true",
        help="draw the scaling curve (issue 24) instead: AE-only and CLIP+SSL+AE generation vs FLOPs, "
        "verdicts and resolution, into OUT/scaling_curve.{md,png,json} (default OUT: RUNS_DIR/report)",
    )
    parser.add_argument(
        "--archive-dir",
        type=Path,
        default=Path("docs/results/grids/scaling"),
        help="with --scaling-curve: where the cells are archived, for the printed redraw command",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.scaling_curve:
        return _scaling_curve(args)
    try:
        report = build_report(args.runs_dir, args.out, include_unfinished=args.include_unfinished)
    except VTPError as error:
        print(f"vtp-report: error: {error}", file=sys.stderr)
        return 2
    for note in report.notes:
        print(f"note: {note}")
    for info in report.figures.values():
        print(f"wrote {info.path}")
    print(f"wrote {report.results_path}")
    print(f"wrote {report.summary_path}")
    return 0


def _scaling_curve(args: argparse.Namespace) -> int:
    from vtp_lightning.report.scaling_report import build_scaling_report

    try:
        out = args.out if args.out is not None else args.runs_dir / "report"
        report = build_scaling_report(args.runs_dir, out, archive_dir=args.archive_dir)
    except VTPError as error:
        print(f"vtp-report: error: {error}", file=sys.stderr)
        return 2
    for sentence in report.verdicts:
        print(sentence)
    for path in (report.figure, report.markdown, report.summary):
        print(f"wrote {path}")
    print(f"redraw from the archived cells without training: {report.redraw}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
