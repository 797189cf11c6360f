"""Keep a grid's finished cells in git, so a grid that spans sessions or machines loses nothing.

``runs/`` is not versioned (checkpoints are large). ``archive`` copies the small files of every
finished cell (``DONE``, its records, ``metrics.csv`` of every attempt, the protocol JSON) to
``docs/results/grids/<grid>/``; ``restore`` copies them back into ``runs/<grid>/`` so ``make grid``
skips those cells and ``vtp-report`` reads them. A restored cell has no checkpoint: re-running it
needs ``rm`` of its ``DONE`` first.

    python scripts/grid_results.py archive paper      python scripts/grid_results.py restore paper
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from vtp_lightning.grid_layout import ATTEMPTS, DONE, METRICS, finished_cells, is_done

KEPT = (DONE, "cell.json", ATTEMPTS, "summary.json", METRICS, "config.yaml")
# protocol_eval.jsonl: the scaling curve's second protocol draws (vtp_lightning.scaling_run)
KEPT_GLOBS = (f"attempts/*/{METRICS}", "generation/protocol_*.json", "generation/protocol_eval.jsonl")


def copy_cell(cell: Path, source_root: Path, target_root: Path) -> None:
    files = [cell / name for name in KEPT] + [p for pattern in KEPT_GLOBS for p in cell.glob(pattern)]
    for path in files:
        if path.is_file():
            target = target_root / path.relative_to(source_root)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("archive", "restore"))
    parser.add_argument("grid", help="grid name, e.g. paper")
    parser.add_argument("--runs-dir", type=Path, default=Path("runs"))
    parser.add_argument("--archive-dir", type=Path, default=Path("docs/results/grids"))
    args = parser.parse_args(argv)
    runs, archive = args.runs_dir / args.grid, args.archive_dir / args.grid
    source, target = (runs, archive) if args.action == "archive" else (archive, runs)
    cells = finished_cells(source)
    if not cells:
        print(
            f"error: no finished cells under {source}; run `make grid GRID={args.grid}` first",
            file=sys.stderr,
        )
        return 2
    copied = 0
    for cell in cells:
        if args.action == "restore" and is_done(target / cell.relative_to(source)):
            continue  # never overwrite a cell that finished here
        copy_cell(cell, source, target)
        copied += 1
    print(f"{args.action}d {copied} of {len(cells)} finished cells: {source} -> {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
