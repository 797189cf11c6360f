"""A diverged run stops at its first non-finite loss with one error, and nothing downstream trusts NaN.

The NaN is injected where a real divergence shows up first, in the inputs of one step (every loss
term then is NaN), and also produced for real with a learning rate of 1e30.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from tiny_sizes import tiny_options

from callbacks.evaluation import refuse_non_finite_weights
from callbacks.non_finite import NonFiniteGuard
from vtp_lightning.cli import main as cli_main
from vtp_lightning.errors import NonFiniteError
from vtp_lightning.export import main as export_main
from vtp_lightning.metrics.feature_statistics import FeatureStatistics
from vtp_lightning.tokenizer import AETokenizer, CLIPAETokenizer

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore:perceptual loss off", "ignore:.*does not have many workers"),
]


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def _all_finite(state: dict[str, torch.Tensor]) -> bool:
    return all(bool(torch.isfinite(v).all()) for v in state.values() if v.is_floating_point())


def _nan_images_at_step(step: int) -> Callable[..., dict[str, Any]]:
    def transfer(self: Any, batch: dict[str, Any], dataloader_idx: int) -> dict[str, Any]:
        if self.global_step == step:
            batch = dict(batch, image=torch.full_like(batch["image"], math.nan))
        return batch

    return transfer


def test_a_nan_at_step_3_stops_the_run_naming_the_step_and_terms_and_keeps_step_3s_checkpoint(
    tmp_path: Path,
    shrunk_cli_args: Callable[..., list[str]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(CLIPAETokenizer, "on_before_batch_transfer", _nan_images_at_step(3))
    args = shrunk_cli_args(EXPERIMENTS / "clip_ae.yaml", tmp_path, max_steps=6, checkpoint_every=1)
    assert cli_main(args) == 2
    (error,) = _error_lines(capsys.readouterr().err)
    assert "step 3" in error
    assert "train/loss_clip = nan" in error and "train/loss_rec = nan" in error

    checkpoints = tmp_path / "checkpoints"
    assert sorted(p.name for p in checkpoints.glob("*step=*")) == [
        f"epoch=0-step={k}.ckpt" for k in (1, 2, 3)
    ]
    last = torch.load(checkpoints / "last.ckpt", map_location="cpu", weights_only=True)
    assert last["global_step"] == 3 and _all_finite(last["state_dict"])
    step_3 = torch.load(checkpoints / "epoch=0-step=3.ckpt", map_location="cpu", weights_only=True)
    for key, value in step_3["state_dict"].items():
        assert torch.equal(last["state_dict"][key], value), key


def _count_guards(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many guards each fit runs with (recorded when the fit starts)."""
    guards: list[int] = []
    monkeypatch.setattr(
        NonFiniteGuard,
        "on_fit_start",
        lambda self, trainer, module: guards.append(
            sum(isinstance(c, NonFiniteGuard) for c in trainer.callbacks)
        ),
    )
    return guards


def _diverging_args(
    shrunk_cli_args: Callable[..., list[str]], root: Path, lr: float, max_steps: int, **options: Any
) -> list[str]:
    """The shrunk ``ae.yaml`` fit at learning rate ``lr`` from the first step (no warm-up)."""
    options.update({"model.init_args.lr": lr, "model.init_args.warmup_fraction": 0.0})
    return shrunk_cli_args(EXPERIMENTS / "ae.yaml", root, max_steps=max_steps, **options)


def _diverge(args: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> str:
    """Run a fit that diverges: it exits 2 with one error line saying so, having run with exactly one
    guard (the config lists callbacks.NonFiniteGuard too: the module's replaces it). The error line."""
    guards = _count_guards(monkeypatch)
    assert cli_main(args) == 2
    (error,) = _error_lines(capsys.readouterr().err)
    assert "training diverged at step" in error
    assert guards == [1]
    return error


def test_a_diverging_learning_rate_exits_non_zero_and_leaves_only_finite_checkpoints(
    tmp_path: Path,
    shrunk_cli_args: Callable[..., list[str]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = _diverging_args(shrunk_cli_args, tmp_path, lr=1e30, max_steps=8, checkpoint_every=1)
    error = _diverge(args, monkeypatch, capsys)
    assert "lr" in error
    checkpoints = sorted((tmp_path / "checkpoints").glob("*.ckpt"))
    assert checkpoints, "the first steps' checkpoints are kept"
    for path in checkpoints:
        state = torch.load(path, map_location="cpu", weights_only=True)
        assert state["global_step"] < 8 and _all_finite(state["state_dict"]), path.name


PLAIN_CHECKPOINTS = [
    {
        "class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
        "init_args": {"save_last": True, "save_top_k": -1, "every_n_train_steps": 1},
    }
]


@pytest.mark.parametrize(
    "callbacks", [None, PLAIN_CHECKPOINTS], ids=["callbacks-null", "only-a-model-checkpoint"]
)
def test_the_guard_stays_on_whatever_callback_list_replaces_the_configs(
    callbacks: list[dict[str, Any]] | None,
    tmp_path: Path,
    shrunk_cli_args: Callable[..., list[str]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = _diverging_args(shrunk_cli_args, tmp_path, lr=1e6, max_steps=6)
    args += ["--trainer.callbacks", json.dumps(callbacks)]  # after the config's list: replaces it
    _diverge(args, monkeypatch, capsys)
    written = list(tmp_path.rglob("*.ckpt"))
    assert written or callbacks is None  # the step before the divergence is kept by ModelCheckpoint
    for path in written:
        state = torch.load(path, map_location="cpu", weights_only=True)
        assert _all_finite(state["state_dict"]), path.name


def test_a_checkpoint_of_non_finite_weights_is_refused_before_it_is_written() -> None:
    checkpoint = {"state_dict": {"encoder.w": torch.tensor([1.0, math.inf]), "step": torch.tensor(3)}}

    class _Trainer:
        global_step = 7

    with pytest.raises(NonFiniteError, match=r"step 7.*encoder\.w"):
        NonFiniteGuard().on_save_checkpoint(_Trainer(), None, checkpoint)  # type: ignore[arg-type]


def test_export_and_evaluation_refuse_non_finite_weights_and_features(
    tmp_path: Path, shrunk_cli_args: Callable[..., list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli_main(shrunk_cli_args(EXPERIMENTS / "ae.yaml", tmp_path / "run", max_steps=1)) == 0
    state = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    state["state_dict"]["encoder.cls_token"].fill_(math.nan)
    poisoned = tmp_path / "nan.ckpt"
    torch.save(state, poisoned)
    capsys.readouterr()
    assert export_main([str(poisoned), str(tmp_path / "out")]) == 2
    (error,) = _error_lines(capsys.readouterr().err)
    assert "non-finite" in error and "encoder.cls_token" in error
    assert not (tmp_path / "out").exists()

    model = AETokenizer(**tiny_options(AETokenizer))
    with torch.no_grad():
        model.encoder.cls_token.fill_(math.nan)
    with pytest.raises(NonFiniteError, match="encoder.cls_token"):
        refuse_non_finite_weights(model, "ReconstructionEvaluation at step 4")
    with pytest.raises(NonFiniteError, match="Fréchet"):
        FeatureStatistics(2).update(torch.tensor([[0.0, math.nan]]))
