"""Paired evaluation: the generation protocol's every draw comes from its seed.

Same latents and the same protocol seed give identical gFD and KID, bit for bit on one thread;
another protocol seed (another DiT initialisation, noise, sampling noise and reference set) changes
them. This is what makes the difference between two tokenizers free of protocol noise.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from callbacks import GenerationEvaluation
from callbacks.evaluation import frozen
from vtp_lightning.metrics.generation import GenerationProtocol
from vtp_lightning.metrics.generation_eval import draw_protocol_images

IMAGES = 24


@pytest.fixture
def one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def generation(seed: int) -> GenerationEvaluation:
    protocol = GenerationProtocol(
        dit="tiny",
        train_steps=3,
        batch_size=8,
        sampling_steps=2,
        num_samples=IMAGES,
        sample_batch_size=IMAGES,
        seed=seed,
    )
    return GenerationEvaluation(
        protocol=protocol, train_images=IMAGES, reference_images=IMAGES, grid_images=0, batch_size=IMAGES
    )


def test_same_latents_and_protocol_seed_give_identical_scores_another_seed_changes_them(
    one_thread: None, make_ae, make_data, fake_trainer
) -> None:
    model, trainer = make_ae(), fake_trainer(make_data(multicrop=False))
    with frozen(model):
        torch.manual_seed(0)
        first = generation(seed=0).evaluate(trainer, model)
        torch.manual_seed(99)  # the global RNG plays no part
        again = generation(seed=0).evaluate(trainer, model)
        other = generation(seed=1).evaluate(trainer, model)

    for key in ("eval/gfd_fmnist", "eval/gkd_fmnist", "eval/gfd_fmnist_inf", "eval/gkd_fmnist_se"):
        assert first[key] == again[key], key  # bit for bit
        assert first[key] != other[key], key
    assert first == again
    assert 0.0 <= first["eval/gen_class_agreement"] <= 1.0


def test_the_reference_and_training_images_are_drawn_by_the_protocol_seed(make_data, fake_trainer) -> None:
    trainer = fake_trainer(make_data(multicrop=False))

    def reference_indices(seed: int) -> list[int]:
        callback = generation(seed)
        drawn = draw_protocol_images(
            trainer.datamodule.eval_dataset, "val", IMAGES, callback.counts, callback.protocol
        )
        return list(drawn.indices)

    assert reference_indices(0) == reference_indices(0)
    assert reference_indices(0) != reference_indices(1)
    assert len(set(reference_indices(0))) == IMAGES


def test_an_unset_protocol_seed_follows_the_runs_seed_everything(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from callbacks.generation import run_seed

    monkeypatch.setenv("PL_GLOBAL_SEED", "4")
    assert GenerationProtocol().with_run_seed(run_seed()).seed == 4
    monkeypatch.delenv("PL_GLOBAL_SEED")
    assert run_seed() == 0
