"""Two CPU processes (gloo) hold half a batch each and must agree with one process holding all of it.

Gradient bookkeeping for the contrastive losses. Rank r holds rows ``x_r`` of the global batch and
computes ``loss_r`` (its local rows against the gathered columns). DDP optimises the mean
``L = (loss_0 + loss_1) / W``. ``all_gather``'s backward sums, over ranks, the gradient that every
rank's loss sends to ``x_r``, so after ``loss_r.backward()`` rank r holds

    x_r.grad = sum_q d loss_q / d x_r = W * dL/dx_r,

i.e. ``x_r.grad / W`` equals the single-process gradient of the full-batch loss on those rows. A
parameter that is not gathered (the logit scale) gets only ``d loss_r / d s`` on rank r; DDP's
averaging over ranks gives ``dL/ds``, the single-process gradient.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
import torch.nn.functional as F
from gloo_group import free_port, gloo_group

from vtp_lightning.distributed import world_size
from vtp_lightning.losses import CenteredSoftmax, ClipLoss, SigLipLoss, SinkhornKnopp

WORLD = 2
LOCAL_BATCH = 3
EMBED = 8
PROTOTYPES = 6
TEMP = 0.5

pytestmark = [pytest.mark.distributed, pytest.mark.timeout(60)]


def _inputs() -> dict[str, torch.Tensor]:
    """The global batch (2B rows), identical in every process."""
    g = torch.Generator().manual_seed(0)
    n = WORLD * LOCAL_BATCH
    return {
        "image": F.normalize(torch.randn(n, EMBED, generator=g), dim=-1),
        "text": F.normalize(torch.randn(n, EMBED, generator=g), dim=-1),
        "teacher_logits": torch.randn(n, PROTOTYPES, generator=g) + torch.linspace(0, 2, PROTOTYPES),
        "old_center": torch.randn(1, PROTOTYPES, generator=g),
    }


def _contrastive(
    image: torch.Tensor, text: torch.Tensor, sigmoid: bool
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Loss and gradients of one process's rows (the whole batch when not distributed)."""
    image = image.clone().requires_grad_(True)
    text = text.clone().requires_grad_(True)
    scale = torch.tensor(math.log(5.0), requires_grad=True)
    bias = torch.tensor(-1.0, requires_grad=True)
    loss = SigLipLoss()(image, text, scale, bias) if sigmoid else ClipLoss()(image, text, scale)
    loss.backward()
    grads = {"image": image.grad, "text": text.grad, "scale": scale.grad}
    if sigmoid:
        grads["bias"] = bias.grad
    return loss.detach(), grads


def _targets(logits: torch.Tensor, old_center: torch.Tensor) -> dict[str, torch.Tensor]:
    centring = CenteredSoftmax(PROTOTYPES, momentum=0.7)
    centring.set_center(old_center)
    centred = centring(logits, TEMP)
    fresh = CenteredSoftmax(PROTOTYPES, momentum=0.7)
    first_centred = fresh(logits, TEMP)
    sinkhorn = SinkhornKnopp(PROTOTYPES, iterations=3)(logits, TEMP)
    return {
        "centred": centred,
        "center": centring.center.clone(),
        "first_centred": first_centred,
        "first_center": fresh.center.clone(),
        "sinkhorn": sinkhorn,
    }


def _worker(rank: int, port: int, out_dir: str) -> None:
    with gloo_group(rank, WORLD, port):
        data = _inputs()
        rows = slice(rank * LOCAL_BATCH, (rank + 1) * LOCAL_BATCH)
        result: dict[str, object] = {"world_size": world_size()}
        for name, sigmoid in (("clip", False), ("siglip", True)):
            loss, grads = _contrastive(data["image"][rows], data["text"][rows], sigmoid)
            result[name] = {"loss": loss, "grads": grads}
        result["targets"] = _targets(data["teacher_logits"][rows], data["old_center"])
        torch.save(result, Path(out_dir) / f"rank{rank}.pt")


@pytest.fixture(scope="module")
def ranks(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    """Run both ranks once and return what each computed."""
    out = tmp_path_factory.mktemp("gloo")
    mp.spawn(_worker, args=(free_port(), str(out)), nprocs=WORLD, join=True)
    return [torch.load(out / f"rank{r}.pt", weights_only=True) for r in range(WORLD)]


def _rows(rank: int) -> slice:
    return slice(rank * LOCAL_BATCH, (rank + 1) * LOCAL_BATCH)


def test_both_workers_really_ran_as_a_2_process_group(ranks: list[dict]) -> None:
    assert [r["world_size"] for r in ranks] == [WORLD, WORLD]
    # and they held different rows, so agreement below is not trivial
    assert not torch.allclose(ranks[0]["clip"]["loss"], ranks[1]["clip"]["loss"])


@pytest.mark.parametrize("name", ["clip", "siglip"])
def test_contrastive_loss_and_gradients_on_2_ranks_equal_one_process_with_the_whole_batch(
    name: str, ranks: list[dict]
) -> None:
    data = _inputs()
    full_loss, full_grads = _contrastive(data["image"], data["text"], sigmoid=name == "siglip")

    mean_loss = sum(r[name]["loss"] for r in ranks) / WORLD
    torch.testing.assert_close(mean_loss, full_loss)
    for rank, result in enumerate(ranks):
        grads = result[name]["grads"]
        for feature in ("image", "text"):
            torch.testing.assert_close(grads[feature] / WORLD, full_grads[feature][_rows(rank)])
    for param in [k for k in full_grads if k not in ("image", "text")]:
        ddp_average = sum(r[name]["grads"][param] for r in ranks) / WORLD
        torch.testing.assert_close(ddp_average, full_grads[param])


def test_dino_centre_is_the_same_on_both_ranks_and_equals_the_single_process_centre(
    ranks: list[dict],
) -> None:
    data = _inputs()
    single = _targets(data["teacher_logits"], data["old_center"])
    expected_center = 0.7 * data["old_center"] + 0.3 * data["teacher_logits"].mean(0, keepdim=True)
    torch.testing.assert_close(single["center"], expected_center)
    for rank, result in enumerate(ranks):
        torch.testing.assert_close(result["targets"]["center"], single["center"])
        torch.testing.assert_close(result["targets"]["centred"], single["centred"][_rows(rank)])


def test_a_fresh_dino_centre_starts_from_the_global_first_batch_mean_on_every_rank(
    ranks: list[dict],
) -> None:
    logits = _inputs()["teacher_logits"]
    torch.testing.assert_close(
        _targets(logits, _inputs()["old_center"])["first_center"], logits.mean(0, keepdim=True)
    )
    for rank, result in enumerate(ranks):
        torch.testing.assert_close(result["targets"]["first_center"], logits.mean(0, keepdim=True))
        expected = torch.softmax((logits[_rows(rank)] - logits.mean(0, keepdim=True)) / TEMP, dim=-1)
        torch.testing.assert_close(result["targets"]["first_centred"], expected)


def test_sinkhorn_targets_on_2_ranks_equal_the_single_process_targets(ranks: list[dict]) -> None:
    single = _targets(_inputs()["teacher_logits"], _inputs()["old_center"])["sinkhorn"]
    for rank, result in enumerate(ranks):
        torch.testing.assert_close(result["targets"]["sinkhorn"], single[_rows(rank)])
