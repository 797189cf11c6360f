"""The gFD protocol's one flow, without Lightning: image counts, sharing work between processes, the
DiT's final loss, when class agreement is measured, and several DiT budgets from one run."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from vtp_lightning.data.templates import FASHION_MNIST_CLASSES
from vtp_lightning.errors import ConfigError
from vtp_lightning.metrics.fmnist_extractor import FashionMNISTFeatureExtractor
from vtp_lightning.metrics.generation import GenerationProtocol
from vtp_lightning.metrics.generation_eval import (
    GenerationCounts,
    Shards,
    agreement_applies,
    dit_tail_loss,
    encode_training_latents,
    generate_and_score,
)

PROTOCOL = GenerationProtocol(
    dit="tiny", train_steps=4, batch_size=4, sampling_steps=2, num_samples=8, seed=1
)


@pytest.mark.parametrize("field", ["train_images", "reference_images", "pool_images", "batch_size"])
def test_counts_must_be_positive(field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        GenerationCounts(**{field: 0})


def test_the_dit_loss_at_a_budget_is_the_mean_of_its_last_tenth() -> None:
    history = [float(step) for step in range(1, 21)]  # loss k at step k
    assert dit_tail_loss(history, 20) == (19 + 20) / 2
    assert dit_tail_loss(history, 10) == 10.0  # a tenth of 10 steps is the last one
    assert dit_tail_loss(history, 5) == 5.0  # fewer than 10 steps: still the last one


def test_class_agreement_is_measured_as_set_or_for_the_classes_the_classifier_knows() -> None:
    fashion = list(FASHION_MNIST_CLASSES)
    assert agreement_applies(None, fashion, FASHION_MNIST_CLASSES)
    assert not agreement_applies(None, ["cat", "dog"], FASHION_MNIST_CLASSES)
    assert not agreement_applies(None, None, FASHION_MNIST_CLASSES)
    assert agreement_applies(True, ["cat", "dog"], FASHION_MNIST_CLASSES)
    assert not agreement_applies(False, fashion, FASHION_MNIST_CLASSES)


def images(count: int) -> list[dict[str, torch.Tensor]]:
    generator = torch.Generator().manual_seed(0)
    return [
        {"image": torch.rand(3, 8, 8, generator=generator) * 2 - 1, "label": torch.tensor(i % 3)}
        for i in range(count)
    ]


def pool(images: torch.Tensor) -> torch.Tensor:
    return F.avg_pool2d(images, 4)


def test_two_processes_each_encoding_half_give_what_one_process_encodes() -> None:
    data, counts = images(8), GenerationCounts(batch_size=4)
    one_latents, one_labels = encode_training_latents(pool, data, counts)

    parts = [
        encode_training_latents(
            pool, data, counts, shards=Shards(share=lambda n, r=rank: range(4 * r, 4 * r + 4))
        )
        for rank in (0, 1)
    ]

    assert one_latents.shape == (16, 3, 2, 2)  # 8 images and their flips, a batch then its flips
    assert torch.equal(torch.cat([p[0] for p in parts]), one_latents)  # what all_gather concatenates
    assert torch.equal(torch.cat([p[1] for p in parts]), one_labels)
    first_batch = torch.stack([item["image"] for item in data[:4]])
    assert torch.equal(one_latents[:8], torch.cat([pool(first_batch), pool(first_batch.flip(-1))]))


def to_images(latents: torch.Tensor) -> torch.Tensor:
    """A stand-in decoder: latents (N, 3, 2, 2) -> normalised images (N, 3, 32, 32)."""
    return torch.tanh(F.interpolate(latents, size=32))


@pytest.fixture(scope="module")
def extractor() -> FashionMNISTFeatureExtractor:
    return FashionMNISTFeatureExtractor()


def _latents_and_reference(extractor: FashionMNISTFeatureExtractor) -> tuple[torch.Tensor, torch.Tensor]:
    """16 random latents, and as reference set the features of the first 8 decoded (in [0, 1])."""
    latents = torch.randn(16, 3, 2, 2, generator=torch.Generator().manual_seed(2))
    return latents, extractor((to_images(latents[:8]) + 1) / 2).double()


def test_one_dit_run_scores_every_budget_and_unlabelled_data_gets_no_agreement(
    extractor: FashionMNISTFeatureExtractor,
) -> None:
    latents, reference = _latents_and_reference(extractor)
    unlabelled = torch.full((16,), -1)

    run = generate_and_score(
        latents,
        unlabelled,
        to_images,
        reference,
        extractor,
        PROTOCOL,
        GenerationCounts(),
        classifier=extractor,
        dit_steps=[4, 2],
    )

    assert [r.dit_steps for r in run.results] == [2, 4]
    assert len(run.history) == 4 and run.num_classes is None
    assert [r.dit_loss for r in run.results] == [run.history[1], run.history[3]]
    assert all(r.scores.class_agreement is None and "class_agreement" not in r.values() for r in run.results)
    with pytest.raises(ConfigError, match="positive"):
        generate_and_score(
            latents, unlabelled, to_images, reference, extractor, PROTOCOL, GenerationCounts(), dit_steps=[0]
        )


def test_labelled_data_with_a_classifier_gets_class_agreement(
    extractor: FashionMNISTFeatureExtractor,
) -> None:
    latents, reference = _latents_and_reference(extractor)

    run = generate_and_score(
        latents,
        torch.arange(16) % 10,
        to_images,
        reference,
        extractor,
        PROTOCOL,
        GenerationCounts(),
        classifier=extractor,
        keep_samples=3,
    )

    (result,) = run.results
    assert run.num_classes == 10
    assert 0.0 <= result.values()["class_agreement"] <= 1.0
    assert result.samples01 is not None and result.samples01.shape == (3, 3, 32, 32)
