"""The real images' feature statistics (and gFD's reference features) are computed once per (data,
extractor) and then read from ``$VTP_CACHE_DIR``: by later evaluations and by later runs."""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from callbacks import GenerationEvaluation, ReconstructionEvaluation
from callbacks.evaluation import frozen
from callbacks.features import data_id
from vtp_lightning.data import ImageFolder, VTPDataModule
from vtp_lightning.metrics.fmnist_extractor import FMNIST_WEIGHTS, FashionMNISTFeatureExtractor
from vtp_lightning.metrics.generation import GenerationProtocol

pytestmark = pytest.mark.integration

IMAGES = 16


@pytest.fixture
def extractor_images(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Images seen by the fmnist extractor, one entry per forward call."""
    seen: list[int] = []
    forward = FashionMNISTFeatureExtractor.forward

    def counting(self: FashionMNISTFeatureExtractor, images01: torch.Tensor) -> torch.Tensor:
        seen.append(images01.shape[0])
        return forward(self, images01)

    monkeypatch.setattr(FashionMNISTFeatureExtractor, "forward", counting)
    return seen


def cache_files(cache: Path) -> list[Path]:
    return sorted((cache / "fid_stats").glob("*.safetensors"))


def reconstruction(**options) -> ReconstructionEvaluation:
    return ReconstructionEvaluation(num_images=IMAGES, grid_images=0, batch_size=IMAGES, **options)


def test_a_second_evaluation_and_a_second_run_read_the_reference_statistics_from_the_cache(
    tmp_path: Path, isolated_reference_cache: Path, extractor_images: list[int], make_ae, fit_tiny, metrics_of
) -> None:
    pl.seed_everything(0, verbose=False)
    fit_tiny(make_ae(), tmp_path / "first", [reconstruction(every_n_steps=1)], max_steps=2)
    # step 1: reconstructions + the real images; step 2: reconstructions only
    assert sum(extractor_images) == 3 * IMAGES
    [cached] = cache_files(isolated_reference_cache)
    written = cached.stat().st_mtime_ns, cached.read_bytes()

    extractor_images.clear()
    pl.seed_everything(0, verbose=False)
    fit_tiny(make_ae(), tmp_path / "second", [reconstruction(every_n_steps=1)], max_steps=2)
    assert sum(extractor_images) == 2 * IMAGES  # reconstructions only
    assert cache_files(isolated_reference_cache) == [cached]
    assert (cached.stat().st_mtime_ns, cached.read_bytes()) == written

    # the same weights and data: the cached statistics give the distance the computed ones gave
    first = [row["eval/rfd_fmnist"] for row in metrics_of(tmp_path / "first") if row["eval/rfd_fmnist"]]
    second = [row["eval/rfd_fmnist"] for row in metrics_of(tmp_path / "second") if row["eval/rfd_fmnist"]]
    assert len(first) == 2
    assert [float(v) for v in second] == pytest.approx([float(v) for v in first], rel=1e-6)


def test_generation_caches_the_features_of_its_protocol_drawn_reference_set(
    tmp_path: Path, isolated_reference_cache: Path, extractor_images: list[int], make_ae, fit_tiny
) -> None:
    """The gFD reference set is drawn by the protocol seed (paired evaluation), so it is not the
    reconstruction set; its features (the kernel distance needs them) are cached per seed."""
    protocol = GenerationProtocol(
        dit="tiny",
        train_steps=2,
        batch_size=8,
        sampling_steps=2,
        num_samples=IMAGES,
        sample_batch_size=IMAGES,
    )

    def generation() -> GenerationEvaluation:
        return GenerationEvaluation(
            protocol=protocol, train_images=IMAGES, reference_images=IMAGES, grid_images=0, batch_size=IMAGES
        )

    fit_tiny(make_ae(), tmp_path / "first", [reconstruction(), generation()], max_steps=1)
    # reconstructions + their real images + generation's real images + generated samples
    assert sum(extractor_images) == 4 * IMAGES
    assert len(cache_files(isolated_reference_cache)) == 2
    assert len(list((isolated_reference_cache / "fid_stats").glob("features-*.safetensors"))) == 1

    extractor_images.clear()
    fit_tiny(make_ae(), tmp_path / "second", [reconstruction(), generation()], max_steps=1)
    assert sum(extractor_images) == 2 * IMAGES  # reconstructions and samples; both real sets cached
    assert len(cache_files(isolated_reference_cache)) == 2


def perturbed_fmnist_weights(path: Path) -> Path:
    """The shipped extractor with one weight nudged: another network, so other statistics."""
    with safe_open(str(FMNIST_WEIGHTS), framework="pt") as f:
        metadata = f.metadata()
    tensors = load_file(str(FMNIST_WEIGHTS))
    name = next(iter(tensors))
    tensors[name] = tensors[name] + 1e-3
    save_file(tensors, str(path), metadata=metadata)
    return path


def test_the_cache_is_keyed_by_the_data_and_by_the_extractor_weights_not_their_path(
    tmp_path: Path, isolated_reference_cache: Path, make_ae, make_data, fake_trainer
) -> None:
    model, trainer = make_ae(), fake_trainer(make_data(multicrop=False))
    copy = tmp_path / "copy.safetensors"
    copy.write_bytes(FMNIST_WEIGHTS.read_bytes())
    expected_files = [
        (reconstruction(), 1),
        (reconstruction(), 1),  # same data, same extractor
        (ReconstructionEvaluation(num_images=IMAGES + 8, grid_images=0, batch_size=IMAGES), 2),  # data
        (reconstruction(extractor_weights=str(perturbed_fmnist_weights(tmp_path / "other.safetensors"))), 3),
        (reconstruction(extractor_weights=str(copy)), 3),  # identical bytes elsewhere: same key
    ]
    for evaluation, files in expected_files:
        with frozen(model):
            evaluation.evaluate(trainer, model)
        assert len(cache_files(isolated_reference_cache)) == files


def image_folder(root: Path) -> Path:
    for name in ("coat", "shirt"):
        (root / name).mkdir(parents=True)
        Image.new("RGB", (8, 8), (128, 128, 128)).save(root / name / "0.png")
    return root


def test_two_image_folders_never_share_a_data_id(tmp_path: Path) -> None:
    first, second = image_folder(tmp_path / "first"), image_folder(tmp_path / "second")

    def identifier(root: Path) -> str:
        return data_id(VTPDataModule(val=ImageFolder(root, random_templates=False)), "val", 2)

    assert identifier(first) != identifier(second)
    assert identifier(first) == identifier(first)
    assert str(first) in identifier(first)


def test_the_data_id_names_split_size_image_size_and_evaluation_order(make_data) -> None:
    datamodule = make_data()
    base = data_id(datamodule, "val", IMAGES)
    assert base == data_id(make_data(), "val", IMAGES)  # stable across instances
    assert base != data_id(datamodule, "train", IMAGES)
    assert base != data_id(datamodule, "val", IMAGES + 1)
    assert base != data_id(VTPDataModule(image_size=16, num_workers=0), "val", IMAGES)
    assert base != data_id(VTPDataModule(seed=1, num_workers=0), "val", IMAGES)
