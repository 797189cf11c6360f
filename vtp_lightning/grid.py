"""The objective-ablation grid: loss combinations x compute budgets x seeds, one folder per cell.

The question the grid answers is the paper's: at equal tokenizer compute, which combination of
objectives gives the best generation, and which keeps improving as compute grows? A *cell* is one
training run::

    <runs-dir>/<grid>/<combination>/<budget>x/seed<k>/

``<combination>`` is the stem of ``experiments/<combination>.yaml``. ``<budget>x`` is the compute
multiplier written the shortest way (``1x``, ``3x``, ``10x``, ``0.5x``): the run trains for
``budget x base_steps`` steps, where ``base_steps`` defaults to the config's own
``trainer.max_steps`` (its "1x"). Each budget is its own run with its own schedule length, not a
checkpoint along a longer run, so learning-rate schedules end where they should.

The runner only sets the step count, the seed and the output folder (plus any ``--extra`` the
user passes, recorded in ``cell.json``); data, evaluation protocol and the gFID DiT spec come from
the configs and are the same for every cell.

A cell folder holds: ``cell.json`` (what the cell is and the exact command), ``experiment_config.yaml``
(the experiment YAML with its ``__base__`` chain merged and the runner's overrides applied; the
training run writes its own fully resolved ``config.yaml``), ``train.log``, ``attempts.jsonl``
(one line per attempt: times, exit code, whether it resumed), ``attempts/<n>/`` (``metrics.csv``
and ``config.yaml`` of interrupted attempts, moved aside before resuming because Lightning's
CSV logger deletes an existing ``metrics.csv``), the run's ``metrics.csv`` and ``checkpoints/``,
and on success ``DONE`` (JSON: wall time, exit code, attempts). A cell with ``DONE`` is skipped;
one with ``checkpoints/last.ckpt`` but no ``DONE`` is resumed from it. ``.lock`` is held
(``flock``) while a cell trains, so two ``make`` processes never train the same cell. These
names, the folder layout and the done state are :mod:`vtp_lightning.grid_layout`'s, which the
report and ``scripts/grid_results.py`` read too.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import platform
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

import yaml
from omegaconf import OmegaConf

from vtp_lightning.combinations import COMBINATIONS as ALL_COMBINATIONS
from vtp_lightning.config_files import load_config
from vtp_lightning.errors import ConfigError, VTPError
from vtp_lightning.grid_layout import (
    ATTEMPTS,
    DONE,
    LAST_CHECKPOINT,
    LOCK,
    METRICS,
    Cell,
    cell_status,
    format_budget,
    is_done,
    parse_budget,
    read_attempts,
)
from vtp_lightning.grid_layout import grid_cells as _grid_cells

COMBINATIONS: tuple[str, ...] = tuple(ALL_COMBINATIONS)
BUDGETS: tuple[float, ...] = (1.0, 3.0, 10.0)
SEEDS: tuple[int, ...] = (0,)

MOVED_ASIDE_ON_RESUME = (METRICS, "config.yaml")
EXIT_LOCKED = 75  # EX_TEMPFAIL: another process is training this cell
TRAIN_COMMAND_ENV = "VTP_GRID_TRAIN_COMMAND"


# -- cells (their layout: vtp_lightning.grid_layout) ---------------------------------------


def grid_cells(
    grid: str,
    combinations: Sequence[str] = COMBINATIONS,
    budgets: Sequence[float] = BUDGETS,
    seeds: Sequence[int] = SEEDS,
) -> list[Cell]:
    """Every cell, combination-major (the order ``make grid`` lists them in)."""
    return _grid_cells(grid, combinations, budgets, seeds)


# -- experiment configs -----------------------------------------------------------------------


def base_steps_of(config_path: Path) -> int:
    """The config's ``trainer.max_steps`` (``__base__`` chain merged): what one unit of budget means."""
    steps = (load_config(config_path).get("trainer") or {}).get("max_steps")
    if not isinstance(steps, int) or steps <= 0:
        raise ConfigError(f"{config_path} sets no positive trainer.max_steps; pass --base-steps N")
    return steps


def dotted_overrides(args: Sequence[str]) -> list[tuple[str, Any]]:
    """``--a.b value`` / ``--a.b=value`` pairs of a LightningCLI argument list, values as YAML.

    Appends (``--a.b+=value``) and bare flags are left out: only ``cell.json`` records those.
    """
    pairs: list[tuple[str, Any]] = []
    index = 0
    while index < len(args):
        arg = args[index]
        if arg.startswith("--") and "=" in arg:
            key, value = arg[2:].split("=", 1)
        elif arg.startswith("--") and index + 1 < len(args) and not args[index + 1].startswith("--"):
            key, value = arg[2:], args[index + 1]
            index += 1
        else:
            index += 1
            continue
        if not key.endswith("+"):
            pairs.append((key, yaml.safe_load(value)))
        index += 1
    return pairs


# -- running one cell -------------------------------------------------------------------------


def default_train_command() -> list[str]:
    """``$VTP_GRID_TRAIN_COMMAND`` if set, else the suite's ``lightning fit`` next to this Python."""
    if os.environ.get(TRAIN_COMMAND_ENV):
        return shlex.split(os.environ[TRAIN_COMMAND_ENV])
    script = Path(sys.executable).parent / "lightning"
    if script.exists():
        return [str(script), "fit"]
    return [sys.executable, "-m", "vtp_lightning", "fit"]


@dataclass
class CellRun:
    """Everything needed to train one cell."""

    cell: Cell
    runs_dir: Path
    configs_dir: Path = Path("experiments")
    train_command: Sequence[str] | None = None
    base_steps: int | None = None
    extra: Sequence[str] = ()
    echo: bool = True

    @property
    def directory(self) -> Path:
        return self.cell.directory(self.runs_dir)

    @property
    def config_path(self) -> Path:
        return self.configs_dir / f"{self.cell.combination}.yaml"

    def max_steps(self) -> int:
        base = self.base_steps if self.base_steps is not None else base_steps_of(self.config_path)
        return max(1, round(self.cell.budget * base))

    def command(self, resume_from: Path | None) -> list[str]:
        prefix = list(self.train_command) if self.train_command is not None else default_train_command()
        args = [
            "--config",
            str(self.config_path),
            "--seed_everything",
            str(self.cell.seed),
            "--trainer.max_steps",
            str(self.max_steps()),
            "--trainer.default_root_dir",
            str(self.directory),
        ]
        if resume_from is not None:
            args += ["--ckpt_path", str(resume_from)]
        return prefix + args + list(self.extra)


def run_cell(run: CellRun) -> int:
    """Train one cell unless it is DONE; resume it if interrupted. Returns an exit code."""
    directory = run.directory
    if is_done(directory):
        print(f"skip {run.cell.name}: already done ({directory / DONE})")
        return 0
    if not run.config_path.is_file():
        raise ConfigError(f"no config for combination {run.cell.combination!r}: {run.config_path} is missing")
    directory.mkdir(parents=True, exist_ok=True)
    with _cell_lock(directory) as locked:
        if not locked:
            print(
                f"skip {run.cell.name}: another process is training it ({directory / LOCK})", file=sys.stderr
            )
            return EXIT_LOCKED
        if is_done(directory):  # finished while we waited for the lock
            print(f"skip {run.cell.name}: already done ({directory / DONE})")
            return 0
        return _train(run)


def _train(run: CellRun) -> int:
    directory = run.directory
    last = directory / LAST_CHECKPOINT
    resume_from = last if last.is_file() else None
    attempt = len(read_attempts(directory)) + 1
    if resume_from is not None:
        _move_aside_previous_outputs(directory, attempt - 1)
    command = run.command(resume_from)
    _write_cell_files(run, command)

    verb = f"resume from {resume_from}" if resume_from else "train"
    print(f"{run.cell.name}: {verb} ({run.max_steps()} steps), log {directory / 'train.log'}", flush=True)
    started = time.time()
    exit_code = _run_logged(command, directory / "train.log", run.echo)
    record = {
        "attempt": attempt,
        "started_at": _iso(started),
        "finished_at": _iso(time.time()),
        "wall_time_s": round(time.time() - started, 3),
        "exit_code": exit_code,
        "resumed_from": str(resume_from) if resume_from else None,
        "command": command,
    }
    with (directory / ATTEMPTS).open("a") as file:
        file.write(json.dumps(record) + "\n")

    if exit_code != 0:
        print(f"{run.cell.name}: FAILED with exit code {exit_code}; last lines of the log:", file=sys.stderr)
        print(_tail(directory / "train.log"), file=sys.stderr)
        return exit_code
    done = {
        **{k: record[k] for k in ("exit_code", "wall_time_s", "finished_at", "resumed_from")},
        "cell": run.cell.name,
        "max_steps": run.max_steps(),
        "attempts": attempt,
        "total_wall_time_s": round(sum(a["wall_time_s"] for a in read_attempts(directory)), 3),
        "host": platform.node(),
    }
    _write_atomically(directory / DONE, json.dumps(done, indent=2) + "\n")
    if not (directory / METRICS).is_file():
        print(f"{run.cell.name}: warning: the run wrote no metrics.csv", file=sys.stderr)
    print(f"{run.cell.name}: done in {record['wall_time_s']:.0f} s")
    return 0


def _write_cell_files(run: CellRun, command: list[str]) -> None:
    """``cell.json`` (identity and exact command) and ``experiment_config.yaml``."""
    cell = {
        "grid": run.cell.grid,
        "combination": run.cell.combination,
        "budget": run.cell.budget,
        "seed": run.cell.seed,
        "base_steps": run.base_steps if run.base_steps is not None else base_steps_of(run.config_path),
        "max_steps": run.max_steps(),
        "config": str(run.config_path),
        "extra": list(run.extra),
        "command": command,
    }
    _write_atomically(run.directory / "cell.json", json.dumps(cell, indent=2) + "\n")
    config = OmegaConf.create(load_config(run.config_path))
    overrides = [
        ("seed_everything", run.cell.seed),
        ("trainer.max_steps", run.max_steps()),
        ("trainer.default_root_dir", str(run.directory)),
        *dotted_overrides(run.extra),
    ]
    for key, value in overrides:
        OmegaConf.update(config, key, value, force_add=True)
    _write_atomically(run.directory / "experiment_config.yaml", OmegaConf.to_yaml(config))


def _move_aside_previous_outputs(directory: Path, attempt: int) -> None:
    """Keep an interrupted attempt's metrics and config: the resumed run would delete or refuse them."""
    for name in MOVED_ASIDE_ON_RESUME:
        if (directory / name).is_file():
            target = directory / "attempts" / str(attempt)
            target.mkdir(parents=True, exist_ok=True)
            shutil.move(directory / name, target / name)


def _run_logged(command: list[str], log_path: Path, echo: bool) -> int:
    """Run the command, appending its output to the log (and to our stdout when ``echo``)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with log_path.open("ab") as log:
        log.write(f"\n==> {_iso(time.time())} {shlex.join(command)}\n".encode())
        log.flush()
        output = subprocess.PIPE if echo else log
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=env)
        with _forward_sigterm(process):
            try:
                if echo:
                    _tee(process.stdout, log)
                return process.wait()
            except KeyboardInterrupt:  # the run got the same Ctrl-C; record how it ended
                return process.wait()


def _tee(source: IO[bytes] | None, log: IO[bytes]) -> None:
    """Copy raw bytes (progress bars use carriage returns, so not line by line)."""
    assert source is not None
    while chunk := os.read(source.fileno(), 65536):
        log.write(chunk)
        sys.stdout.buffer.write(chunk)
        sys.stdout.flush()


@contextlib.contextmanager
def _forward_sigterm(process: subprocess.Popen) -> Iterator[None]:
    """A terminated runner terminates its training run instead of orphaning it."""

    def forward(signum: int, frame: object) -> None:
        process.send_signal(signum)

    try:
        previous = signal.signal(signal.SIGTERM, forward)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def _cell_lock(directory: Path) -> Iterator[bool]:
    """An exclusive ``flock`` on the cell; the kernel drops it if the holder dies, so it never goes stale."""
    with (directory / LOCK).open("a+") as file:
        try:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            file.truncate(0)
            file.write(f"{os.getpid()}\n")
            file.flush()
            yield True
        finally:
            fcntl.flock(file, fcntl.LOCK_UN)


def _write_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


def _tail(path: Path, lines: int = 30) -> str:
    text = path.read_text(errors="replace").replace("\r", "\n")
    return "\n".join(text.splitlines()[-lines:])


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, tz=timezone.utc).isoformat(timespec="seconds")


# -- command line -----------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m vtp_lightning.grid",
        description="Run and inspect the objective-ablation grid (combinations x budgets x seeds). "
        "Cells live in RUNS_DIR/GRID/<combination>/<budget>x/seed<k>/.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser(
        "run-cell",
        help="train one cell (skip if DONE, resume from checkpoints/last.ckpt if interrupted)",
        description="Train one cell for BUDGET x base steps. Skips a DONE cell, resumes an interrupted "
        f"one, exits {EXIT_LOCKED} if another process holds the cell's lock.",
    )
    run.add_argument("combination", help="config stem: experiments/<combination>.yaml")
    run.add_argument("budget", help="compute multiplier of the config's 1x steps, e.g. 1, 3, 10, 0.5")
    run.add_argument("seed", type=int, help="seed_everything value")
    _add_location_arguments(run)
    run.add_argument("--configs-dir", type=Path, default=Path("experiments"), help="default: experiments")
    run.add_argument(
        "--base-steps", type=int, help="steps of a 1x budget (default: the config's trainer.max_steps)"
    )
    run.add_argument(
        "--train-command",
        help=f"command prefix that trains (default: ${TRAIN_COMMAND_ENV} or '<venv>/bin/lightning fit')",
    )
    run.add_argument("--no-echo", action="store_true", help="write the run's output to train.log only")
    run.add_argument(
        "--extra",
        nargs=argparse.REMAINDER,
        default=[],
        help="everything after it goes to the training command unchanged (must come last)",
    )

    listing = commands.add_parser("list", help="print every cell with its status and folder")
    _add_location_arguments(listing)
    listing.add_argument("--combinations", nargs="+", default=list(COMBINATIONS))
    listing.add_argument("--budgets", nargs="+", default=[format_budget(b) for b in BUDGETS])
    listing.add_argument("--seeds", nargs="+", type=int, default=list(SEEDS))
    return parser


def _add_location_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--grid", default="default", help="grid name: a sub-folder of RUNS_DIR (default: default)"
    )
    parser.add_argument("--runs-dir", type=Path, default=Path("runs"), help="default: runs")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "list":
            budgets = [parse_budget(text) for text in args.budgets]
            for cell in grid_cells(args.grid, args.combinations, budgets, args.seeds):
                directory = cell.directory(args.runs_dir)
                print(f"{cell.name:<28} {cell_status(directory):<12} {directory}")
            return 0
        if args.seed < 0:
            raise ConfigError(f"seed must be >= 0, got {args.seed}")
        run = CellRun(
            cell=Cell(args.grid, args.combination, parse_budget(args.budget), args.seed),
            runs_dir=args.runs_dir,
            configs_dir=args.configs_dir,
            train_command=shlex.split(args.train_command) if args.train_command else None,
            base_steps=args.base_steps,
            extra=args.extra,
            echo=not args.no_echo,
        )
        return run_cell(run)
    except VTPError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
