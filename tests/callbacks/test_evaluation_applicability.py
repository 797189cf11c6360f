"""Which evaluations apply to which tokenizer, what a missing Inception file does, and metric names."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from callbacks import GenerationEvaluation, ReconstructionEvaluation, ZeroShotEvaluation
from callbacks.features import ExtractorHolder
from vtp_lightning.errors import WeightsError
from vtp_lightning.metrics import INCEPTION_WEIGHTS_ENV
from vtp_lightning.metrics.generation import GenerationProtocol

TINY_PROTOCOL = GenerationProtocol(
    dit="tiny", train_steps=2, batch_size=8, sampling_steps=2, num_samples=16, sample_batch_size=16
)


def test_zero_shot_applies_only_to_tokenizers_with_a_contrastive_objective(make_vtp, make_ae) -> None:
    assert ZeroShotEvaluation().applies_to(make_vtp())
    assert not ZeroShotEvaluation().applies_to(make_ae())


@pytest.mark.integration
def test_zero_shot_is_skipped_for_an_autoencoder_and_logs_no_column(
    tmp_path: Path, make_ae, fit_tiny, metrics_of
) -> None:
    zero_shot = ZeroShotEvaluation(eval_images=16, every_n_steps=1, batch_size=16)
    reconstruction = ReconstructionEvaluation(num_images=16, grid_images=0, every_n_steps=1, batch_size=16)
    fit_tiny(make_ae(), tmp_path, [zero_shot, reconstruction], max_steps=1)

    columns = set(metrics_of(tmp_path)[0])
    assert "eval/rfd_fmnist" in columns  # the run did evaluate
    assert "eval/zeroshot_top1" not in columns
    assert zero_shot.last_results == {}
    assert zero_shot.seconds_spent == 0.0


def test_reconstruction_and_generation_apply_only_when_the_decoder_is_trained(make_ae) -> None:
    from vtp_lightning.tokenizer import AETokenizer

    trained = make_ae()
    untrained = AETokenizer(**{**trained.hparams, "rec_weight": 0.0})
    for evaluation in (ReconstructionEvaluation(), GenerationEvaluation(protocol=TINY_PROTOCOL)):
        assert evaluation.applies_to(trained)
        assert not evaluation.applies_to(untrained)  # its decoder never trained: rFD/gFD would mean nothing


@pytest.mark.integration
def test_a_run_with_rec_weight_0_logs_no_reconstruction_or_generation_column(
    tmp_path: Path, make_vtp, fit_tiny, metrics_of
) -> None:
    from vtp_lightning.tokenizer import VTPTokenizer

    model = VTPTokenizer(**{**make_vtp().hparams, "rec_weight": 0.0})
    zero_shot = ZeroShotEvaluation(eval_images=16, every_n_steps=1, batch_size=16)
    reconstruction = ReconstructionEvaluation(num_images=16, grid_images=0, every_n_steps=1, batch_size=16)
    generation = GenerationEvaluation(
        protocol=TINY_PROTOCOL, train_images=16, reference_images=16, every_n_steps=1, batch_size=16
    )
    fit_tiny(model, tmp_path, [zero_shot, reconstruction, generation], max_steps=1)

    columns = set(metrics_of(tmp_path)[0])
    assert "eval/zeroshot_top1" in columns  # the run did evaluate
    assert not {c for c in columns if c.startswith(("eval/rfd", "eval/gfd", "eval/psnr"))}


@pytest.mark.integration
@pytest.mark.parametrize(
    "evaluation",
    [
        ReconstructionEvaluation(
            num_images=16, feature_extractor="inception", every_n_steps=1, batch_size=16
        ),
        GenerationEvaluation(
            protocol=TINY_PROTOCOL,
            train_images=16,
            reference_images=16,
            feature_extractor="inception",
            every_n_steps=1,
            batch_size=16,
        ),
    ],
    ids=["rfid", "gfid"],
)
def test_fid_without_inception_weights_raises_one_weights_error_naming_the_variable(
    evaluation, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make_ae, fit_tiny
) -> None:
    monkeypatch.delenv(INCEPTION_WEIGHTS_ENV, raising=False)
    model = make_ae()
    evaluation.every_n_steps = 1000  # not due in this run: the missing file must stop it at fit start
    with pytest.raises(WeightsError) as raised:
        fit_tiny(model, tmp_path, [evaluation], max_steps=2)

    assert model.global_step == 0  # no training time lost before the error

    assert type(raised.value) is WeightsError  # the error itself, not wrapped by Lightning
    assert INCEPTION_WEIGHTS_ENV in str(raised.value)
    assert evaluation.last_results == {}  # no FID from a random-weight stand-in
    metrics = tmp_path / "metrics.csv"
    assert not metrics.exists() or "fid" not in metrics.read_text().splitlines()[0]


def test_a_distance_is_named_after_its_feature_extractor() -> None:
    fmnist = ExtractorHolder("fmnist", None).get(torch.device("cpu"))
    assert fmnist.metric_name("r") == "rfd_fmnist"
    assert fmnist.metric_name("g") == "gfd_fmnist"


def test_the_inception_extractor_is_never_built_without_its_weights(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(INCEPTION_WEIGHTS_ENV, raising=False)
    with pytest.raises(WeightsError, match=INCEPTION_WEIGHTS_ENV):
        ExtractorHolder("inception", None).get(torch.device("cpu"))


def test_a_missing_inception_file_is_named_with_where_the_path_came_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(INCEPTION_WEIGHTS_ENV, str(tmp_path / "missing.pth"))
    with pytest.raises(WeightsError, match=f"missing.pth.*{INCEPTION_WEIGHTS_ENV}"):
        ExtractorHolder("inception", None).get(torch.device("cpu"))
