"""Shared by the CLI tests: command lines that shrink a shipped experiment config to a few CPU steps."""

from __future__ import annotations

import functools
import importlib
import inspect
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from tiny_sizes import TINY_CLIP, TINY_ENCODER, TINY_MODEL

from vtp_lightning.config_files import load_config

REPO = Path(__file__).resolve().parents[1]
EXPERIMENTS = REPO / "experiments"


# The test models are tiny and the machine's cores are shared: a second intra-op thread only adds
# synchronisation, which under load makes small ops tens of times slower.
if "OMP_NUM_THREADS" not in os.environ:
    torch.set_num_threads(1)

# Model options that make any composition tiny; each is applied only where the class accepts it.
# The latent width stays the config's (16), which the checkpoint-loading tests build against.
SHRINK_MODEL: dict[str, Any] = dict(TINY_MODEL)


def import_path(class_path: str) -> Any:
    module, _, name = class_path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def init_parameters(cls: type) -> set[str]:
    """Every keyword the class accepts through its ``__init__`` chain (mixins pass ``**kwargs`` up)."""
    names: set[str] = set()
    for klass in cls.__mro__:
        if "__init__" in vars(klass):
            names |= set(inspect.signature(klass.__init__).parameters)
    return names - {"self", "args", "kwargs"}


def quiet_callbacks(callbacks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The config's callbacks with every scheduled evaluation switched off (still built and validated).

    Evaluation callbacks (anything taking ``every_n_steps`` and ``at_fit_end``) would evaluate
    thousands of images at the end of fit; a two-step smoke run only checks that they are built.
    """
    out = []
    for entry in callbacks:
        entry = json.loads(json.dumps(entry))
        params = init_parameters(import_path(entry["class_path"]))
        if {"every_n_steps", "at_fit_end"} <= params:
            entry.setdefault("init_args", {}).update(every_n_steps=None, at_fit_end=False)
        out.append(entry)
    return out


def shrunk_args(
    config: Path, root: Path, max_steps: int = 2, checkpoint_every: int | None = None, **overrides: Any
) -> list[str]:
    """``fit`` arguments that run ``config`` for ``max_steps`` tiny CPU steps, logging into ``root``.

    ``checkpoint_every`` makes the config's ModelCheckpoint keep a checkpoint every that many steps.

    Trainer hardware, image size and data sources are forced to the CPU defaults (so the GPU
    ``scale/`` presets run too); model options shrink only where the config's class accepts them.
    """
    merged = load_config(config)
    data = merged.get("data", {})
    accepted = init_parameters(import_path(merged["model"]["class_path"]))
    args = ["fit", "--config", str(config)]
    args += ["--trainer.max_steps", str(max_steps), "--trainer.default_root_dir", str(root)]
    args += ["--trainer.accelerator", "cpu", "--trainer.devices", "1", "--trainer.num_nodes", "1"]
    args += ["--trainer.strategy", "auto", "--trainer.precision", "32-true"]
    args += ["--trainer.val_check_interval", "2", "--trainer.log_every_n_steps", "1"]
    # not 1: jsonargparse reads Trainer's `float | int` as the float 1.0, which Lightning takes as 100%
    args += ["--trainer.limit_val_batches", "2"]
    args += ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]
    args += ["--data.image_size", "16", "--data.patch_size", "4", "--data.batch_size", "8"]
    args += ["--data.num_workers", "0", "--data.val_limit", "8"]
    for source in ("train", "val"):
        if data.get(source) is not None:  # e.g. WebDataset shards on a cluster: use the embedded data
            args += [f"--data.{source}", "null"]
    if data.get("local_crop_size") is not None:
        args += ["--data.local_crop_size", "null"]
    if data.get("ssl_batch_size") != 0:
        args += ["--data.ssl_batch_size", "4", "--data.num_local_crops", "2"]
    for key, value in SHRINK_MODEL.items():
        if key in accepted:
            args += [f"--model.init_args.{key}", str(value)]
    callbacks = quiet_callbacks(merged.get("trainer", {}).get("callbacks") or [])
    if checkpoint_every is not None:
        for entry in callbacks:
            if entry["class_path"].endswith(".ModelCheckpoint"):
                entry.setdefault("init_args", {}).update(every_n_train_steps=checkpoint_every, save_top_k=-1)
    if callbacks:
        args += ["--trainer.callbacks", json.dumps(callbacks)]
    for key, value in overrides.items():
        args += [f"--{key}", str(value)]
    return args


@pytest.fixture(scope="session")
def shrunk_cli_args() -> Callable[..., list[str]]:
    """``shrunk_cli_args(config, root, max_steps=2, **{"trainer.x": value})``: see :func:`shrunk_args`."""
    return shrunk_args


@pytest.fixture(scope="session")
def tiny_clip_ae_options() -> dict[str, Any]:
    """Options of a CLIP+AE tokenizer small enough to build in milliseconds (the tests' tiny sizes)."""
    return {**TINY_ENCODER, **TINY_CLIP}


@pytest.fixture(scope="session")
def ae_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real one-step checkpoint of the reconstruction-only tokenizer (``experiments/ae.yaml``,
    shrunk), written once per session through the CLI; tests only read it."""
    from vtp_lightning.cli import main

    root = tmp_path_factory.mktemp("ae_run")
    assert main(shrunk_args(EXPERIMENTS / "ae.yaml", root, max_steps=1)) == 0
    return root / "checkpoints" / "last.ckpt"


# ----------------------------------------------------------------------------- the unit layer
# A test that runs a Trainer (fit/validate/test/predict, directly, through the CLI or in a fixture)
# must be marked ``integration`` (or ``slow``/``distributed``), so ``make test-unit`` can leave it out.
INTEGRATION_MARKERS = ("integration", "slow", "distributed")
_running: list[pytest.Item] = []


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    _running[:] = [item]  # before fixtures are set up, so module-scoped fixtures are checked too


def _refuse_in_unit_tests(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)  # LightningCLI reads fit's signature (e.g. --ckpt_path) through the wrapper
    def checked(*args: Any, **kwargs: Any) -> Any:
        item = _running[0] if _running else None
        if item is not None and not any(item.get_closest_marker(m) for m in INTEGRATION_MARKERS):
            raise AssertionError(f"{item.nodeid} runs a Trainer: mark it @pytest.mark.integration")
        return method(*args, **kwargs)

    return checked


def _guard_trainer() -> None:
    from lightning.pytorch import Trainer

    for name in ("fit", "validate", "test", "predict"):
        setattr(Trainer, name, _refuse_in_unit_tests(getattr(Trainer, name)))


_guard_trainer()
