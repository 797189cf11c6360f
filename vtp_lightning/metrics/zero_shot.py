"""Zero-shot classification with a contrastive text tower, as CLIP and the paper evaluate it.

Each class becomes one text embedding: the class name is put into every prompt template, each
prompt is embedded and L2-normalised, the prompts are averaged and the mean is normalised again.
An image is assigned the class whose embedding has the highest cosine similarity (scaled by 100,
CLIP's logit scale, which does not change the arg-max).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from open_clip.zero_shot_classifier import build_zero_shot_classifier as open_clip_zero_shot_classifier

# A handful of CLIP-style prompts that fit small grey product photos such as Fashion-MNIST.
DEFAULT_TEMPLATES: tuple[str, ...] = (
    "a photo of a {}.",
    "a black and white photo of a {}.",
    "a low resolution photo of a {}.",
    "a grayscale photo of a {}.",
    "a photo of the {}, a type of clothing.",
    "a small photo of a {}.",
)


class _TokenEncoder:
    """The one method open_clip's classifier builder calls on a CLIP model: ``encode_text(tokens, normalize)``."""

    def __init__(self, encode_tokens: Callable[[torch.Tensor], torch.Tensor]) -> None:
        self.encode_tokens = encode_tokens

    def encode_text(self, tokens: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        embeddings = self.encode_tokens(tokens).float()
        return F.normalize(embeddings, dim=-1) if normalize else embeddings


def build_zero_shot_classifier(
    encode_tokens: Callable[[torch.Tensor], torch.Tensor],
    tokenize: Callable[[list[str]], torch.Tensor],
    class_names: Sequence[str],
    templates: Sequence[str] = DEFAULT_TEMPLATES,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Class embeddings ``(E, C)``, one normalised column per class (open_clip's builder).

    ``tokenize`` maps prompts to token ids; ``encode_tokens`` maps token ids to text embeddings.
    """
    if not class_names or not templates:
        raise ValueError("zero-shot classification needs at least one class name and one template")
    return open_clip_zero_shot_classifier(
        _TokenEncoder(encode_tokens), tokenize, list(class_names), list(templates), device=device
    )


def zero_shot_logits(image_embeddings: torch.Tensor, classifier: torch.Tensor) -> torch.Tensor:
    """``100 * cosine`` between images ``(N, E)`` and classes ``(E, C)``: logits ``(N, C)``."""
    return 100.0 * F.normalize(image_embeddings.float(), dim=-1) @ classifier.to(image_embeddings.device)


@torch.no_grad()
def zero_shot_top1(image_embeddings: torch.Tensor, classifier: torch.Tensor, labels: torch.Tensor) -> float:
    """Top-1 accuracy (a fraction in ``[0, 1]``) of zero-shot predictions; labels ``-1`` are ignored."""
    known = labels >= 0
    if not known.any():
        raise ValueError("zero-shot accuracy needs labelled images; all labels are -1")
    predictions = zero_shot_logits(image_embeddings[known], classifier).argmax(dim=1)
    return float((predictions == labels[known].to(predictions.device)).float().mean())
