"""A fixed, class-balanced order for evaluation subsets.

``eval_dataset(split, limit)`` takes the first ``limit`` samples of this order. Samples are shuffled
with a seed and then dealt class by class (round-robin), so any prefix holds every class about equally
often — a 500-sample linear probe on 10 classes sees 50 of each, not whatever the file order gives.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def balanced_order(num_samples: int, labels: Sequence[int] | None, seed: int) -> np.ndarray:
    """Indices ``0..num_samples-1`` in a seeded order whose prefixes are class-balanced."""
    rng = np.random.default_rng(seed)
    shuffled = rng.permutation(num_samples)
    if labels is None:
        return shuffled
    classes = np.unique(np.asarray(labels), return_inverse=True)[1][shuffled]
    by_class = np.argsort(classes, kind="stable")
    sorted_classes = classes[by_class]
    rank_within_class = np.empty(num_samples, dtype=np.int64)
    rank_within_class[by_class] = np.arange(num_samples) - np.searchsorted(sorted_classes, sorted_classes)
    class_turn = rng.permutation(int(classes.max()) + 1)[classes]
    return shuffled[np.lexsort((class_turn, rank_within_class))]
