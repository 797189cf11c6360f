"""Zero-shot classification: prompts averaged per class, images matched by cosine similarity."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F

from vtp_lightning.metrics.zero_shot import DEFAULT_TEMPLATES, build_zero_shot_classifier, zero_shot_top1

CLASS_NAMES = ["T-shirt/top", "trouser", "pullover", "dress", "coat"]
DIM = 32


PROMPTS = [t.format(n) for n in CLASS_NAMES for t in DEFAULT_TEMPLATES]


def tokenize(prompts: list[str]) -> torch.Tensor:
    """A stand-in tokenizer: one id per known prompt."""
    return torch.tensor([PROMPTS.index(p) for p in prompts])


def fake_text_tower() -> tuple[torch.Tensor, Callable[[torch.Tensor], torch.Tensor]]:
    """A text encoder that puts each prompt near its class direction, plus template-specific noise."""
    generator = torch.Generator().manual_seed(0)
    class_directions = F.normalize(torch.randn(len(CLASS_NAMES), DIM, generator=generator), dim=-1)
    template_noise = {t: 0.3 * torch.randn(DIM, generator=generator) for t in DEFAULT_TEMPLATES}

    def encode_tokens(tokens: torch.Tensor) -> torch.Tensor:
        rows = []
        for token in tokens.tolist():
            name = CLASS_NAMES[token // len(DEFAULT_TEMPLATES)]
            template = DEFAULT_TEMPLATES[token % len(DEFAULT_TEMPLATES)]
            rows.append(5.0 * (class_directions[CLASS_NAMES.index(name)] + template_noise[template]))
        return torch.stack(rows)

    return class_directions, encode_tokens


def test_classifier_has_one_unit_norm_column_per_class() -> None:
    _, encode_text = fake_text_tower()

    classifier = build_zero_shot_classifier(encode_text, tokenize, CLASS_NAMES)

    assert classifier.shape == (DIM, len(CLASS_NAMES))
    torch.testing.assert_close(classifier.norm(dim=0), torch.ones(len(CLASS_NAMES)))


def test_picks_the_class_whose_text_matches_the_image() -> None:
    class_directions, encode_text = fake_text_tower()
    classifier = build_zero_shot_classifier(encode_text, tokenize, CLASS_NAMES)
    labels = torch.arange(len(CLASS_NAMES)).repeat(20)
    images = 3.0 * class_directions[labels] + 0.2 * torch.randn(
        len(labels), DIM, generator=torch.Generator().manual_seed(1)
    )

    assert zero_shot_top1(images, classifier, labels) == 1.0
    assert zero_shot_top1(images, classifier, (labels + 1) % len(CLASS_NAMES)) == 0.0


def test_averages_templates_after_normalising_each_prompt() -> None:
    # One prompt embedding is 100x longer; per-prompt normalisation keeps it from dominating.
    def encode_tokens(tokens: torch.Tensor) -> torch.Tensor:
        return torch.tensor([[100.0, 0.0], [0.0, 1.0]])[tokens]

    def two_prompts(prompts: list[str]) -> torch.Tensor:
        return torch.tensor([["a x", "the x"].index(p) for p in prompts])

    classifier = build_zero_shot_classifier(encode_tokens, two_prompts, ["x"], templates=["a {}", "the {}"])

    torch.testing.assert_close(classifier[:, 0], torch.tensor([1.0, 1.0]) / 2**0.5)


def test_default_templates_hold_one_class_slot_each() -> None:
    assert len(DEFAULT_TEMPLATES) >= 3
    assert all(t.count("{}") == 1 for t in DEFAULT_TEMPLATES)
    with pytest.raises(ValueError, match="at least one class name"):
        build_zero_shot_classifier(lambda t: torch.zeros(len(t), 2), tokenize, [])
