"""The scaling curve's runs (issue 24): estimate the new compute, refuse over budget, then train.

AE-only and CLIP+SSL+AE at budgets 1x, 4x, 16x (of 25 steps), seeds 0 1 2, plus 64x for seed 0 of
each when the estimate still fits. Cells already finished (the paper grid's 1x/4x cells, restored
from ``docs/results/grids/paper`` by ``make scaling-curve``) are not trained again. Every cell gets
a second gFD protocol draw (``protocol_eval``, protocol seed = tokenizer seed + 100) next to the one
its training run made (protocol seed = tokenizer seed), written into the cell's
``generation/protocol_eval.jsonl`` so ``scripts/grid_results.py`` archives it with the cell. A
finished cell without a checkpoint (an archived one) cannot be drawn again and keeps one draw.
Archived cells join new ones only after a reuse check: one archived 1x cell per combination is
trained again with today's code and must log the same training values
(:mod:`vtp_lightning.scaling_reuse`); otherwise the run stops before any new cell.

Before anything trains it prints the quiet-machine estimate (:mod:`vtp_lightning.scaling_cost`) and
refuses, with one ``error:`` line, when it exceeds ``--budget-hours`` unless ``--go-on``. Cells run
one at a time, lowest budget first, so a stopped run still leaves a curve; it resumes where it
stopped (DONE cells and written draws are skipped).

    python -m vtp_lightning.scaling_run --runs-dir runs/scaling --grid paper --estimate-only
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from vtp_lightning.errors import ConfigError, VTPError
from vtp_lightning.grid_layout import (
    LAST_CHECKPOINT,
    Cell,
    cell_directories,
    is_done,
    parse_budget,
)
from vtp_lightning.scaling_cost import CostModel, measure_grid
from vtp_lightning.scaling_reuse import DEFAULT_TOLERANCE, compare_cells

PROTOCOL_ROWS = Path("generation") / "protocol_eval.jsonl"
RUN_RECORD = "scaling_run.jsonl"
PROTOCOL_SEED_OFFSET = 100


def protocol_seeds(tokenizer_seed: int, offset: int = PROTOCOL_SEED_OFFSET) -> tuple[int, int]:
    """The two protocol draws of a cell: its training run's (= its seed) and ``protocol_eval``'s."""
    return tokenizer_seed, tokenizer_seed + offset


def drawn_seeds(directory: Path) -> set[int]:
    """Protocol seeds already in the cell's ``protocol_eval`` rows."""
    path = Path(directory) / PROTOCOL_ROWS
    if not path.is_file():
        return set()
    return {json.loads(line)["protocol_seed"] for line in path.read_text().splitlines() if line.strip()}


@dataclass
class Plan:
    """What a run would do and what it would cost, in seconds of quiet 2-core time."""

    train: list[tuple[Cell, int, float]] = field(default_factory=list)  # cell, steps, seconds
    draws: list[tuple[Cell, int, float]] = field(default_factory=list)  # cell, protocol seed, seconds
    one_draw: list[Cell] = field(default_factory=list)  # finished, no checkpoint: cannot be drawn again
    done: list[Cell] = field(default_factory=list)
    checks: list[tuple[Cell, Cell, int, float]] = field(default_factory=list)  # fresh, archived, steps, s

    @property
    def seconds(self) -> float:
        trained = sum(s for *_, s in self.train) + sum(s for *_, s in self.draws)
        return trained + sum(s for *_, s in self.checks)

    def extend(self, other: Plan) -> None:
        self.train += other.train
        self.draws += other.draws
        self.one_draw += other.one_draw
        self.done += other.done


def plan_cells(
    cells: Sequence[Cell], runs_dir: Path, models: dict[str, CostModel], base_steps: int, offset: int
) -> Plan:
    plan = Plan()
    for cell in cells:
        directory = cell.directory(runs_dir)
        model = models[cell.combination]
        steps = max(1, round(cell.budget * base_steps))
        second = protocol_seeds(cell.seed, offset)[1]
        finished = is_done(directory)
        if finished:
            plan.done.append(cell)
        else:
            plan.train.append((cell, steps, model.cell_seconds(steps)))
        if second in drawn_seeds(directory):
            continue
        if finished and not (directory / LAST_CHECKPOINT).is_file():
            plan.one_draw.append(cell)
        else:
            plan.draws.append((cell, second, model.protocol_draw_seconds()))
    return plan


def check_grid(grid: str) -> str:
    """Where the reuse check trains its cells (next to the grid, never inside it)."""
    return f"{grid}-reuse-check"


def plan_reuse_checks(plan: Plan, runs_dir: Path, models: dict[str, CostModel], base_steps: int) -> None:
    """One check per combination whose archived cells would be reused: its cheapest archived cell
    trained again with today's code (:mod:`vtp_lightning.scaling_reuse`)."""
    for combination in sorted({c.combination for c in plan.one_draw}):
        archived = min(
            (c for c in plan.one_draw if c.combination == combination), key=lambda c: (c.budget, c.seed)
        )
        fresh = Cell(check_grid(archived.grid), combination, archived.budget, archived.seed)
        steps = max(1, round(archived.budget * base_steps))
        seconds = 0.0 if is_done(fresh.directory(runs_dir)) else models[combination].cell_seconds(steps)
        plan.checks.append((fresh, archived, steps, seconds))


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.2f} h"


def describe(plan: Plan, models: dict[str, CostModel], left_out: str | None, budget_hours: float) -> str:
    lines = ["scaling curve: quiet 2-core estimate of the new compute, from finished cells' records"]
    lines += [f"  cost of {model.describe()}" for model in models.values()]
    lines += [
        f"  reuse check: train {archived.name} again with today's code, compare its losses with the archived "
        f"cell's ({steps} steps): {seconds / 60:.0f} min"
        for _, archived, steps, seconds in plan.checks
    ]
    lines += [
        f"  train {cell.name} ({steps} steps): {seconds / 60:.0f} min" for cell, steps, seconds in plan.train
    ]
    if plan.draws:
        each = ", ".join(sorted({f"{s / 60:.1f} min" for *_, s in plan.draws}))
        lines.append(
            f"  second protocol draw (protocol seed = seed + 100) of {len(plan.draws)} cells: {each} each"
        )
    if plan.done:
        lines.append(f"  already finished, not trained again: {len(plan.done)} cells")
    if plan.one_draw:
        lines.append(
            f"  finished without a checkpoint (archived), keep their one protocol draw: {len(plan.one_draw)} cells "
            f"({', '.join(c.name for c in plan.one_draw)}); to give them a second draw, delete their folders first"
        )
    if left_out:
        lines.append(f"  left out: {left_out}")
    lines.append(f"estimate: {_hours(plan.seconds)} of new compute (budget {budget_hours:g} h)")
    return "\n".join(lines)


def run_reuse_checks(
    plan: Plan, runs_dir: Path, configs_dir: Path, base_steps: int, tolerance: float
) -> list[str]:
    """Train each check cell; refuse (ConfigError) when today's code trains it differently."""
    from vtp_lightning.grid import CellRun, run_cell

    found = []
    for fresh, archived, _, _ in plan.checks:
        code = run_cell(CellRun(fresh, runs_dir, configs_dir, base_steps=base_steps, echo=False))
        if code != 0:
            raise ConfigError(
                f"the reuse check cell {fresh.directory(runs_dir)} failed (exit {code}); see its train.log"
            )
        match = compare_cells(archived.directory(runs_dir), fresh.directory(runs_dir))
        print(f"reuse check: {match.describe(tolerance)}", flush=True)
        if not match.within(tolerance):
            raise ConfigError(
                f"the archived {archived.name} no longer matches today's code ({match.where}, relative difference "
                f"{match.worst:.2g}): its cells cannot join new ones; retrain them (SCALING_RESTORE=no, on a fresh "
                "SCALING_RUNS_DIR) or, knowing why, skip the check with SCALING_SKIP_REUSE_CHECK=1"
            )
        found.append(match.describe(tolerance))
    return found


def run_plan(
    plan: Plan,
    runs_dir: Path,
    configs_dir: Path,
    base_steps: int,
    record: Path,
    tolerance: float = DEFAULT_TOLERANCE,
) -> int:
    """The reuse checks, then each cell in turn (lowest budget first) and its second protocol draw."""
    from vtp_lightning.grid import CellRun, run_cell  # the runner imports OmegaConf: only when running

    started = time.time()
    checks = run_reuse_checks(plan, runs_dir, configs_dir, base_steps, tolerance)
    draws = {cell: seed for cell, seed, _ in plan.draws}
    order = [cell for cell, *_ in plan.train] + [
        cell for cell in draws if cell not in {c for c, *_ in plan.train}
    ]
    for cell in sorted(order, key=lambda c: (c.budget, c.seed, c.combination)):
        if not is_done(cell.directory(runs_dir)):
            code = run_cell(CellRun(cell, runs_dir, configs_dir, base_steps=base_steps, echo=False))
            if code != 0:
                return code
        if cell in draws:
            directory = cell.directory(runs_dir)
            command = [
                sys.executable, "-m", "vtp_lightning.protocol_eval", str(directory / LAST_CHECKPOINT),
                "--seeds", str(draws[cell]), "--config", str(configs_dir / f"{cell.combination}.yaml"),
                "--out", str(directory / PROTOCOL_ROWS),
            ]  # fmt: skip
            (directory / PROTOCOL_ROWS).parent.mkdir(parents=True, exist_ok=True)
            print(f"{cell.name}: protocol draw with seed {draws[cell]}", flush=True)
            code = subprocess.run(command, stdout=subprocess.DEVNULL).returncode
            if code != 0:
                return code
    finished = time.time()
    entry = {
        "started_at": datetime.fromtimestamp(started, tz=timezone.utc).isoformat(timespec="seconds"),
        "finished_at": datetime.fromtimestamp(finished, tz=timezone.utc).isoformat(timespec="seconds"),
        "wall_time_s": round(finished - started, 1),
        "estimate_s": round(plan.seconds, 1),
        "trained": [cell.name for cell, *_ in plan.train],
        "drawn": [cell.name for cell in draws],
        "reuse_check": checks,
    }
    with record.open("a") as file:
        file.write(json.dumps(entry) + "\n")
    print(f"scaling curve runs finished in {_hours(finished - started)} (estimate {_hours(plan.seconds)})")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m vtp_lightning.scaling_run", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--runs-dir", type=Path, default=Path("runs/scaling"), help="default: runs/scaling")
    parser.add_argument("--grid", default="paper", help="grid name under RUNS_DIR (default: paper)")
    parser.add_argument("--configs-dir", type=Path, default=Path("experiments"))
    parser.add_argument("--combinations", nargs="+", default=["ae", "clip_ssl_ae"])
    parser.add_argument("--budgets", nargs="+", default=["1", "4", "16"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--extra-budgets", nargs="*", default=["64"], help="added only if the estimate fits")
    parser.add_argument("--extra-seeds", nargs="*", type=int, default=[0])
    parser.add_argument("--base-steps", type=int, default=25, help="steps of a 1x budget (default: 25)")
    parser.add_argument("--protocol-seed-offset", type=int, default=PROTOCOL_SEED_OFFSET)
    parser.add_argument("--budget-hours", type=float, default=3.0, help="refuse above this (default: 3)")
    parser.add_argument(
        "--cost-from",
        type=Path,
        help="also measure costs from the finished cells of this grid folder, e.g. docs/results/grids/paper",
    )
    parser.add_argument(
        "--skip-reuse-check",
        action="store_true",
        help="reuse finished cells without checking that today's code still trains them the same way",
    )
    parser.add_argument(
        "--reuse-tolerance", type=float, default=DEFAULT_TOLERANCE, help="relative, default 1e-4"
    )
    parser.add_argument("--go-on", action="store_true", help="run even when the estimate exceeds the budget")
    parser.add_argument("--estimate-only", action="store_true", help="print the estimate, train nothing")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.budget_hours <= 0 or args.base_steps <= 0:
            raise ConfigError("--budget-hours and --base-steps must be positive")
        grid_dir = args.runs_dir / args.grid
        # each cell once: the grid's own copy wins over the archived one; the check cells are today's code
        measured_at = (
            {d.relative_to(args.cost_from): d for d in cell_directories(args.cost_from)}
            if args.cost_from
            else {}
        )
        measured_at.update({d.relative_to(grid_dir): d for d in cell_directories(grid_dir)})
        measured = measure_grid(
            [*measured_at.values(), *cell_directories(args.runs_dir / check_grid(args.grid))]
        )
        models = {c: CostModel.from_cells(c, measured) for c in args.combinations}
        budgets = [parse_budget(b) for b in args.budgets]
        cells = [Cell(args.grid, c, b, s) for b in budgets for s in args.seeds for c in args.combinations]
        extra = [
            Cell(args.grid, c, b, s)
            for b in (parse_budget(text) for text in args.extra_budgets)
            for s in args.extra_seeds
            for c in args.combinations
        ]
        extra = [cell for cell in extra if cell not in cells]
        plan = plan_cells(cells, args.runs_dir, models, args.base_steps, args.protocol_seed_offset)
        if not args.skip_reuse_check:
            plan_reuse_checks(plan, args.runs_dir, models, args.base_steps)
        limit = args.budget_hours * 3600
        left_out = None
        if extra:
            more = plan_cells(extra, args.runs_dir, models, args.base_steps, args.protocol_seed_offset)
            if plan.seconds + more.seconds <= limit:
                plan.extend(more)
            else:
                names = ", ".join(c.name for c in extra)
                left_out = f"{names} (+{_hours(more.seconds)}: {_hours(plan.seconds + more.seconds)} in all)"
        print(describe(plan, models, left_out, args.budget_hours), flush=True)
        if plan.seconds > limit and not args.go_on:
            raise ConfigError(
                f"the estimate {_hours(plan.seconds)} exceeds the budget of {args.budget_hours:g} h; "
                "raise SCALING_BUDGET_HOURS (--budget-hours) or pass SCALING_GO_ON=1 (--go-on) to run it anyway"
            )
        if args.estimate_only:
            return 0
        record = grid_dir / RUN_RECORD
        return run_plan(plan, args.runs_dir, args.configs_dir, args.base_steps, record, args.reuse_tolerance)
    except VTPError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
