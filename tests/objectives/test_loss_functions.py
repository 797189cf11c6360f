"""The loss modules against independent computations on hand-made tensors.

Each expected value is either a closed form or a direct, loop-based transcription of the formula,
never a call back into the code under test.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from vtp_lightning.losses import (
    CenteredSoftmax,
    ClipLoss,
    DINOLoss,
    IBOTPatchLoss,
    KoLeoLoss,
    SigLipLoss,
    SinkhornKnopp,
    target_entropies,
)


def _log_sigmoid(x: float) -> float:
    return -math.log1p(math.exp(-x))


def _cross_entropy(target: torch.Tensor, logits: torch.Tensor, temperature: float) -> float:
    """-sum_k p_k log softmax(s / T)_k for one row, written out with logsumexp."""
    scaled = [float(v) / temperature for v in logits]
    top = max(scaled)
    log_z = top + math.log(sum(math.exp(v - top) for v in scaled))
    return -sum(float(p) * (v - log_z) for p, v in zip(target, scaled))


# ---------------------------------------------------------------------------------------- CLIP
@pytest.mark.parametrize("batch", [2, 5])
def test_clip_loss_is_log_b_when_features_are_mutually_orthogonal(batch: int) -> None:
    basis = torch.eye(2 * batch)
    image, text = basis[:batch], basis[batch:]  # every image-text similarity is 0
    loss = ClipLoss()(image, text, torch.tensor(math.log(30.0)))
    assert loss.item() == pytest.approx(math.log(batch), rel=1e-6)


@pytest.mark.parametrize("scale", [1.0, 14.3, 100.0])
def test_clip_loss_matches_closed_form_for_orthonormal_matched_pairs(scale: float) -> None:
    batch = 4
    features = torch.eye(batch, 8)
    loss = ClipLoss()(features, features.clone(), torch.tensor(math.log(scale)))
    # Each row: the positive has logit s, the B-1 negatives have logit 0, in both directions.
    expected = -math.log(math.exp(scale) / (math.exp(scale) + (batch - 1)))
    assert loss.item() == pytest.approx(expected, rel=1e-5, abs=1e-6)


def test_clip_loss_is_log_b_when_all_features_are_identical() -> None:
    batch = 6
    same = F.normalize(torch.ones(batch, 4), dim=-1)
    loss = ClipLoss()(same, same.clone(), torch.tensor(math.log(50.0)))
    assert loss.item() == pytest.approx(math.log(batch), rel=1e-5)


def test_clip_loss_averages_the_image_and_text_directions_of_a_direct_softmax() -> None:
    torch.manual_seed(0)
    image = F.normalize(torch.randn(5, 6), dim=-1)
    text = F.normalize(torch.randn(5, 6), dim=-1)
    scale = 7.0
    sims = (image @ text.T).tolist()
    per_image = [
        -math.log(math.exp(scale * sims[i][i]) / sum(math.exp(scale * s) for s in sims[i])) for i in range(5)
    ]
    per_text = [
        -math.log(math.exp(scale * sims[j][j]) / sum(math.exp(scale * sims[i][j]) for i in range(5)))
        for j in range(5)
    ]
    expected = 0.5 * (sum(per_image) / 5 + sum(per_text) / 5)
    loss = ClipLoss()(image, text, torch.tensor(math.log(scale)))
    assert loss.item() == pytest.approx(expected, rel=1e-5)


# -------------------------------------------------------------------------------------- SigLIP
def test_siglip_loss_matches_the_per_pair_sigmoid_formula() -> None:
    torch.manual_seed(1)
    batch = 4
    image = F.normalize(torch.randn(batch, 8), dim=-1)
    text = F.normalize(torch.randn(batch, 8), dim=-1)
    scale, bias = 10.0, -3.0
    sims = (image @ text.T).tolist()
    total = 0.0
    for i in range(batch):
        for j in range(batch):
            label = 1.0 if i == j else -1.0
            total -= _log_sigmoid(label * (scale * sims[i][j] + bias))
    expected = total / batch  # normalised per image row, as SigLIP does
    loss = SigLipLoss()(image, text, torch.tensor(math.log(scale)), torch.tensor(bias))
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_siglip_loss_of_orthonormal_pairs_splits_into_one_positive_and_b_minus_1_negatives() -> None:
    batch, scale, bias = 3, 5.0, -1.0
    features = torch.eye(batch)
    loss = SigLipLoss()(features, features.clone(), torch.tensor(math.log(scale)), torch.tensor(bias))
    expected = -_log_sigmoid(scale + bias) - (batch - 1) * _log_sigmoid(-bias)
    assert loss.item() == pytest.approx(expected, rel=1e-6)


# ---------------------------------------------------------------------------------------- DINO
def test_dino_loss_is_log_k_when_teacher_and_student_are_uniform() -> None:
    k, n = 16, 3
    teacher = [torch.full((n, k), 1.0 / k) for _ in range(2)]
    student = [torch.zeros(n, k) for _ in range(4)]
    assert DINOLoss()(student, teacher, 0.1).item() == pytest.approx(math.log(k), rel=1e-6)


def test_dino_loss_equals_a_double_loop_of_cross_entropies_without_same_view_pairs() -> None:
    torch.manual_seed(2)
    n, k, temp = 3, 7, 0.1
    teacher = [torch.softmax(torch.randn(n, k) / 0.05, dim=-1) for _ in range(2)]
    student = [torch.randn(n, k) for _ in range(2 + 3)]  # 2 global + 3 local views
    pair_losses = []
    for t_idx, targets in enumerate(teacher):
        for s_idx, logits in enumerate(student):
            if s_idx == t_idx:
                continue
            rows = [_cross_entropy(targets[r], logits[r], temp) for r in range(n)]
            pair_losses.append(sum(rows) / n)
    assert len(pair_losses) == 2 * 5 - 2
    expected = sum(pair_losses) / len(pair_losses)
    assert DINOLoss()(student, teacher, temp).item() == pytest.approx(expected, rel=1e-5)


def test_dino_loss_never_matches_a_global_view_with_its_own_teacher_target() -> None:
    torch.manual_seed(3)
    n, k = 4, 5
    teacher = [torch.softmax(torch.randn(n, k), dim=-1) for _ in range(2)]
    student = [torch.randn(n, k, requires_grad=True) for _ in range(3)]
    DINOLoss()(student, teacher, 0.1).backward()
    grad_before = student[0].grad.clone()

    # Replacing teacher target 0 changes the loss, but not the gradient of student view 0: that view
    # only ever learns from the *other* global view's target.
    changed = [torch.softmax(torch.randn(n, k), dim=-1), teacher[1]]
    for s in student:
        s.grad = None
    DINOLoss()(student, changed, 0.1).backward()
    torch.testing.assert_close(student[0].grad, grad_before)
    assert not torch.allclose(student[2].grad, torch.zeros_like(student[2].grad))


# ---------------------------------------------------------------------------------------- iBOT
def test_ibot_loss_weights_every_masked_image_equally_however_many_patches_it_masks() -> None:
    torch.manual_seed(4)
    k, temp = 6, 0.1
    # 3 images: image 0 masks 1 patch, image 1 masks none, image 2 masks 3 patches.
    sample_index = torch.tensor([0, 2, 2, 2])
    student = torch.randn(4, k)
    teacher = torch.softmax(torch.randn(4, k) / 0.05, dim=-1)
    ce = [_cross_entropy(teacher[m], student[m], temp) for m in range(4)]
    per_image = {0: ce[0], 2: (ce[1] + ce[2] + ce[3]) / 3}  # image 1 has no masked patch
    expected = sum(per_image.values()) / len(per_image)
    loss = IBOTPatchLoss()(student, teacher, sample_index, num_samples=3, student_temp=temp)
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_ibot_loss_is_zero_with_a_gradient_path_when_nothing_is_masked() -> None:
    student = torch.zeros(0, 4, requires_grad=True)
    loss = IBOTPatchLoss()(student, torch.zeros(0, 4), torch.zeros(0, dtype=torch.long), 2, 0.1)
    assert loss.item() == 0.0
    loss.backward()  # must not fail: a step where no crop is masked still trains


# --------------------------------------------------------------------------------------- KoLeo
@pytest.mark.parametrize("n", [3, 6, 12])
def test_koleo_of_evenly_spaced_points_on_a_circle_is_minus_log_of_the_chord(n: int) -> None:
    angles = torch.arange(n, dtype=torch.float64) * 2 * math.pi / n
    points = torch.stack([angles.cos(), angles.sin(), torch.zeros(n, dtype=torch.float64)], dim=1)
    chord = 2 * math.sin(math.pi / n)
    assert KoLeoLoss()(points).item() == pytest.approx(-math.log(chord), rel=1e-5)


def test_koleo_uses_each_points_own_nearest_neighbour_after_l2_normalisation() -> None:
    angles = [0.0, 0.2, 0.5, 2.0]
    radii = [1.0, 3.0, 0.5, 7.0]  # KoLeo normalises, so the norms must not matter
    points = torch.tensor([[r * math.cos(a), r * math.sin(a)] for a, r in zip(angles, radii)])

    def chord(a: float, b: float) -> float:
        return 2 * math.sin(abs(a - b) / 2)

    nearest = [min(chord(a, b) for j, b in enumerate(angles) if j != i) for i, a in enumerate(angles)]
    expected = -sum(math.log(d) for d in nearest) / len(nearest)
    assert KoLeoLoss()(points).item() == pytest.approx(expected, rel=1e-5)


# ------------------------------------------------------------------------------ teacher targets
def test_centered_softmax_targets_use_the_old_centre_and_then_move_it_by_ema() -> None:
    torch.manual_seed(5)
    k, momentum, temp = 5, 0.8, 0.07
    centring = CenteredSoftmax(k, momentum=momentum)
    old_centre = torch.randn(1, k)
    centring.set_center(old_centre)
    logits = torch.randn(6, k)

    targets = centring(logits, temp)

    expected = torch.exp((logits - old_centre) / temp)
    expected = expected / expected.sum(dim=-1, keepdim=True)
    torch.testing.assert_close(targets, expected)
    torch.testing.assert_close(centring.center, momentum * old_centre + (1 - momentum) * logits.mean(0, True))


def test_centered_softmax_starts_its_centre_from_the_first_batch_mean() -> None:
    torch.manual_seed(6)
    k, momentum, temp = 4, 0.9, 0.05
    centring = CenteredSoftmax(k, momentum=momentum)
    first, second = torch.randn(5, k) + 3.0, torch.randn(5, k)

    targets = centring(first, temp)

    # the very first targets are already centred (a zero centre would leave them uncentred)
    torch.testing.assert_close(targets, torch.softmax((first - first.mean(0, True)) / temp, dim=-1))
    torch.testing.assert_close(centring.center, first.mean(0, True))
    centring(second, temp)  # later batches move it by EMA only
    expected = momentum * first.mean(0, True) + (1 - momentum) * second.mean(0, True)
    torch.testing.assert_close(centring.center, expected)


def test_centered_softmax_centre_and_its_start_flag_are_checkpointed() -> None:
    centring = CenteredSoftmax(3)
    centring(torch.randn(4, 3), 0.1)
    restored = CenteredSoftmax(3)
    restored.load_state_dict(centring.state_dict())
    assert torch.equal(restored.center, centring.center)
    batch = torch.randn(4, 3)
    torch.testing.assert_close(restored(batch, 0.1), torch.softmax((batch - centring.center) / 0.1, -1))


def test_centered_softmax_counts_a_centre_from_an_older_checkpoint_as_started() -> None:
    restored = CenteredSoftmax(3, momentum=0.5)
    restored.load_state_dict({"center": torch.full((1, 3), 2.0)})
    batch = torch.zeros(2, 3)
    restored(batch, 0.1)
    torch.testing.assert_close(restored.center, torch.full((1, 3), 1.0))


def test_centered_softmax_keeps_its_centre_when_given_no_rows() -> None:
    centring = CenteredSoftmax(3)
    centring.set_center(torch.full((1, 3), 0.5))
    centring(torch.zeros(0, 3), 0.1)
    assert torch.equal(centring.center, torch.full((1, 3), 0.5))


def test_target_entropies_tell_uniform_targets_from_a_shared_prototype_and_from_healthy_ones() -> None:
    k, n = 8, 4
    uniform = target_entropies(torch.full((n, k), 1.0 / k))
    assert uniform["sample"].item() == pytest.approx(math.log(k))
    assert uniform["batch"].item() == pytest.approx(math.log(k))
    shared = target_entropies(F.one_hot(torch.zeros(n, dtype=torch.long), k).float())
    assert shared["sample"].item() == pytest.approx(0.0, abs=1e-6)
    assert shared["batch"].item() == pytest.approx(0.0, abs=1e-6)
    healthy = target_entropies(F.one_hot(torch.arange(n), k).float())
    assert healthy["sample"].item() == pytest.approx(0.0, abs=1e-6)
    assert healthy["batch"].item() == pytest.approx(math.log(n))


@pytest.mark.parametrize("iterations", [3, 50])
def test_sinkhorn_rows_sum_to_one_and_prototypes_are_used_near_uniformly(iterations: int) -> None:
    torch.manual_seed(6)
    batch, k = 64, 8
    bias = torch.linspace(0.0, 1.0, k)  # a teacher that favours the last prototypes
    targets = SinkhornKnopp(k, iterations=iterations)(torch.randn(batch, k) * 0.3 + bias, 1.0)
    torch.testing.assert_close(targets.sum(dim=1), torch.ones(batch))
    usage = targets.sum(dim=0) / batch
    tolerance = 0.02 if iterations == 3 else 1e-4
    torch.testing.assert_close(usage, torch.full((k,), 1.0 / k), atol=tolerance, rtol=0)
    assert (targets >= 0).all()


def test_sinkhorn_balances_prototypes_that_a_plain_softmax_would_leave_skewed() -> None:
    torch.manual_seed(7)
    batch, k = 32, 4
    logits = torch.randn(batch, k) * 0.3 + torch.tensor([0.0, 0.0, 0.0, 2.0])
    plain_usage = torch.softmax(logits, dim=-1).mean(0)
    balanced_usage = SinkhornKnopp(k, iterations=3)(logits, 1.0).mean(0)
    assert (plain_usage - 0.25).abs().max() > 0.3
    assert (balanced_usage - 0.25).abs().max() < 0.05
