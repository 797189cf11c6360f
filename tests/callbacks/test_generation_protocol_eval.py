"""The training callback and ``protocol_eval`` are two doors into one gFD protocol: for the same
tokenizer and protocol seed they give the same gFD, KID and class agreement, bit for bit, and both
equal the protocol assembled here by hand from its building blocks."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader, Subset

from callbacks import GenerationEvaluation
from callbacks.evaluation import frozen
from vtp_lightning.metrics.fmnist_extractor import FashionMNISTFeatureExtractor
from vtp_lightning.metrics.generation import (
    GenerationProtocol,
    LatentNormalizer,
    protocol_subset,
    sample_latents,
    seeded_generator,
    train_latent_dit,
)
from vtp_lightning.metrics.generation_eval import GenerationCounts
from vtp_lightning.metrics.generation_scores import GenerationScores, score_samples
from vtp_lightning.pixels import denormalize
from vtp_lightning.protocol_eval import evaluate_protocol

TRAIN, REFERENCE, BATCH = 30, 20, 10


def tiny_protocol(seed: int) -> GenerationProtocol:
    return GenerationProtocol(
        dit="tiny",
        train_steps=3,
        batch_size=8,
        sampling_steps=2,
        num_samples=20,
        sample_batch_size=8,
        seed=seed,
    )


def by_hand(model, data, protocol: GenerationProtocol) -> GenerationScores:
    """The protocol as its specification reads: draw, encode (+ flips), normalise, train, sample,
    decode, extract, score against the reference images, agreement from the fmnist head."""
    extractor = FashionMNISTFeatureExtractor()

    def drawn(split: str, count: int):
        pool = data.eval_dataset(split, 10000)
        return DataLoader(Subset(pool, protocol_subset(len(pool), count, protocol, split)), batch_size=BATCH)

    latents, labels = [], []
    for batch in drawn("train", TRAIN):
        latents += [model.encode(batch["image"]), model.encode(batch["image"].flip(-1))]
        labels += [batch["label"], batch["label"]]
    latents, labels = torch.cat(latents), torch.cat(labels)
    normalizer = LatentNormalizer.fit(latents)
    with torch.enable_grad():
        dit, _ = train_latent_dit(latents, labels, protocol, normalizer=normalizer, num_classes=10)
    wanted = torch.arange(protocol.num_samples) % 10
    samples = sample_latents(dit, protocol, normalizer, wanted)
    features = torch.cat([extractor(denormalize(model.decode(c))) for c in samples.split(BATCH)]).double()
    reference = torch.cat([extractor(denormalize(b["image"])).double() for b in drawn("val", REFERENCE)])
    logits = extractor.logits_from_features(features.float())
    return score_samples(
        features, reference, seeded_generator(protocol.protocol_seed, "scores"), logits, wanted
    )


@pytest.mark.parametrize("seed", [0, 7])
def test_the_callback_and_protocol_eval_agree_bit_for_bit_with_the_protocol_by_hand(
    seed: int, make_ae, make_data, fake_trainer
) -> None:
    torch.manual_seed(0)
    model, data = make_ae(), make_data(multicrop=False)
    protocol = tiny_protocol(seed)
    callback = GenerationEvaluation(
        protocol=protocol, train_images=TRAIN, reference_images=REFERENCE, grid_images=0, batch_size=BATCH
    )
    with frozen(model):
        logged = callback.evaluate(fake_trainer(data), model)
        (row,) = evaluate_protocol(
            model, protocol, counts=GenerationCounts(TRAIN, REFERENCE, batch_size=BATCH), datamodule=data
        )
        expected = by_hand(model, data, protocol)

    assert (logged["eval/gfd_fmnist"], row["fd"]) == (expected.fd, expected.fd)
    assert (logged["eval/gfd_fmnist_inf"], row["fd_inf"]) == (expected.fd_inf, expected.fd_inf)
    assert (logged["eval/gkd_fmnist"], row["kd"]) == (expected.kd, expected.kd)
    assert (logged["eval/gkd_fmnist_se"], row["kd_se"]) == (expected.kd_se, expected.kd_se)
    agreement = expected.class_agreement
    assert (logged["eval/gen_class_agreement"], row["class_agreement"]) == (agreement, agreement)
    assert logged["eval/gen_dit_loss"] == row["dit_loss"]
