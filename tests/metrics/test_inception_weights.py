"""The Inception extractor only runs on a verified local weights file and says exactly what is wrong
otherwise. The tests make their own file (random weights with the right keys) and declare its hash
the expected one; the real file's prefix is 6726825d."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torchvision.models import inception_v3

from vtp_lightning.errors import WeightsError
from vtp_lightning.metrics import inception
from vtp_lightning.metrics.file_hash import sha256_of_file
from vtp_lightning.metrics.inception import INCEPTION_WEIGHTS_ENV, InceptionFeatureExtractor
from vtp_lightning.metrics.registry import build_feature_extractor


def random_inception_state_dict() -> dict[str, torch.Tensor]:
    # torchvision's InceptionV3 without aux logits and with 1008 classes has exactly the keys and
    # shapes of the FID network, so it stands in for the real file.
    return inception_v3(weights=None, aux_logits=False, init_weights=False, num_classes=1008).state_dict()


@pytest.fixture(scope="module")
def made_weights(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A loadable random-weights file, and one with the classifier weights removed."""
    folder = tmp_path_factory.mktemp("inception")
    state = random_inception_state_dict()
    good, missing = folder / "random-inception.pth", folder / "missing-keys.pth"
    torch.save(state, good)
    torch.save({k: v for k, v in state.items() if not k.startswith("fc.")}, missing)
    return good, missing


def expect_hash_of(monkeypatch: pytest.MonkeyPatch, path: Path) -> None:
    monkeypatch.setattr(inception, "INCEPTION_SHA256_PREFIX", sha256_of_file(path)[:8])


def test_loads_a_file_with_the_expected_hash_and_keys_and_gives_2048_features(
    made_weights, monkeypatch
) -> None:
    good, _ = made_weights
    expect_hash_of(monkeypatch, good)

    extractor = InceptionFeatureExtractor(good)
    features = extractor(torch.rand(2, 3, 32, 32))

    assert features.shape == (2, 2048)
    assert torch.isfinite(features).all()
    assert extractor.weights_sha256 == sha256_of_file(good)


def test_is_the_only_extractor_whose_metric_is_called_fid(made_weights, monkeypatch) -> None:
    good, _ = made_weights
    expect_hash_of(monkeypatch, good)

    extractor = build_feature_extractor("inception", weights=str(good))

    assert (extractor.metric_name("r"), extractor.metric_name("g")) == ("rfid", "gfid")
    assert build_feature_extractor("fmnist").metric_name("r") == "rfd_fmnist"


def test_takes_the_path_from_the_environment(made_weights, monkeypatch) -> None:
    good, _ = made_weights
    expect_hash_of(monkeypatch, good)
    monkeypatch.setenv(INCEPTION_WEIGHTS_ENV, str(good))

    assert InceptionFeatureExtractor().weights_path == good


def test_rejects_a_file_with_the_wrong_hash_naming_both_hashes(made_weights) -> None:
    good, _ = made_weights  # its hash does not start with the real prefix 6726825d

    with pytest.raises(WeightsError, match="6726825d") as error:
        InceptionFeatureExtractor(good)

    assert sha256_of_file(good) in str(error.value)


def test_rejects_a_file_with_missing_keys_naming_them(made_weights, monkeypatch) -> None:
    _, missing = made_weights
    expect_hash_of(monkeypatch, missing)

    with pytest.raises(WeightsError, match=r"missing keys 2 \(fc.weight, fc.bias\)"):
        InceptionFeatureExtractor(missing)


def test_rejects_a_file_that_is_not_a_state_dict(tmp_path, monkeypatch) -> None:
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    expect_hash_of(monkeypatch, garbage)

    with pytest.raises(WeightsError, match="cannot be read"):
        InceptionFeatureExtractor(garbage)


def test_without_a_file_says_which_setting_to_use_and_where_to_get_it(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv(INCEPTION_WEIGHTS_ENV, raising=False)
    with pytest.raises(WeightsError, match=f"{INCEPTION_WEIGHTS_ENV}.*inception_weights"):
        InceptionFeatureExtractor()

    monkeypatch.setenv(INCEPTION_WEIGHTS_ENV, str(tmp_path / "absent.pth"))
    with pytest.raises(
        WeightsError, match=r"absent.pth \(from env VTP_INCEPTION_WEIGHTS\) does not exist.*6726825d"
    ):
        InceptionFeatureExtractor()
