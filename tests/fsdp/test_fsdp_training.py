"""FSDP2 through Lightning (``FSDP2Strategy``, 2 CPU processes, gloo) trains the full VTP tokenizer
(CLIP + DINO + iBOT + reconstruction) as one process on the whole batch does; its sharded checkpoint
resumes exactly and exports the same weights.

The 2-rank fits run in ``fsdp_fit_script.py`` (Lightning's launcher re-runs it for rank 1), once per
module; the single-process reference runs here. What each fit records: see that script.
"""

from __future__ import annotations

import pickle
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from script_module import load_script
from shell_payload import ShellPayload
from two_rank_run import launcher_free_env, run_two_ranks

from vtp_lightning.export import main as export_main
from vtp_lightning.weights.export_dir import WEIGHTS_NAME, read_safetensors

SCRIPT = Path(__file__).resolve().parent / "fsdp_fit_script.py"
TIMEOUT_S = 300
CHECKPOINT = Path("ckpt") / "step2.ckpt"

pytestmark = [
    pytest.mark.distributed,
    pytest.mark.integration,
    pytest.mark.timeout(TIMEOUT_S + 120),
    pytest.mark.filterwarnings("ignore:perceptual loss off"),
]


@pytest.fixture(scope="module")
def fsdp_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Run the three 2-rank fits; fail (after killing both ranks) if they have not finished in time."""
    out = tmp_path_factory.mktemp("fsdp")
    env = launcher_free_env(PYTHONUNBUFFERED="1")
    run_two_ranks([sys.executable, str(SCRIPT), str(out), "fsdp"], out, env, TIMEOUT_S, "the 2-rank fits")
    return out


@pytest.fixture(scope="module")
def fsdp(fsdp_dir: Path) -> dict[str, dict[str, Any]]:
    return {
        name: torch.load(fsdp_dir / f"{name}.pt", weights_only=True)
        for name in ("straight", "stopped", "resumed")
    }


@pytest.fixture(scope="module")
def single(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("single")
    threads = torch.get_num_threads()
    try:
        load_script(SCRIPT).run_single(out)
    finally:
        torch.set_num_threads(threads)
    return torch.load(out / "straight.pt", weights_only=True)


def test_two_ranks_trained_with_every_block_and_part_sharded(fsdp: dict[str, dict[str, Any]]) -> None:
    run = fsdp["straight"]
    assert run["world_size"] == 2
    sharded = set(run["sharded"])
    for name in (
        "encoder.blocks.0.attn.qkv.weight",
        "encoder.patch_embed.weight",
        "bottleneck.proj.weight",
        "decoder.blocks.0.attn.qkv.weight",
        "decoder.proj_out.weight",
        "text_tower.transformer.resblocks.0.attn.in_proj_weight",
        "text_tower.token_embedding.weight",
        "clip_image_proj.weight",
        "ssl_head.prototypes",
        "teacher.encoder.blocks.1.attn.qkv.weight",
        "teacher.ssl_head.prototypes",
    ):
        assert name in sharded, name
    assert "logit_scale" not in sharded  # a 0-d tensor: kept whole on each rank


def test_losses_of_3_steps_equal_one_process_on_the_whole_batch(
    fsdp: dict[str, dict[str, Any]], single: dict[str, Any]
) -> None:
    assert sorted(single["losses"]) == [1, 2, 3]
    for step, loss in single["losses"].items():
        assert fsdp["straight"]["losses"][step] == pytest.approx(loss, rel=1e-5), step
    assert single["losses"][3] != pytest.approx(single["losses"][1], rel=1e-3)  # it trained


def test_every_gradient_of_3_steps_equals_one_process_on_the_whole_batch(
    fsdp: dict[str, dict[str, Any]], single: dict[str, Any]
) -> None:
    for step, expected in single["grads"].items():
        got = fsdp["straight"]["grads"][step]
        assert set(got) == set(expected)
        assert any(name.startswith("text_tower.") for name in expected)  # CLIP's side trains too
        for name, grad in expected.items():
            scale = float(grad.abs().max())
            torch.testing.assert_close(
                got[name], grad, rtol=1e-4, atol=1e-5 * scale, msg=f"step {step} {name}"
            )


def test_weights_and_ema_teacher_after_3_steps_equal_one_process(
    fsdp: dict[str, dict[str, Any]], single: dict[str, Any]
) -> None:
    """Except the text attention's key biases: their true gradient is zero (a softmax does not see a
    shift shared by all keys), so what they get is float rounding, which Adam scales up to ``lr``-sized
    steps of either sign; the rows that follow them are unaffected for the same reason."""
    got, expected = fsdp["straight"]["state"], single["state"]
    assert set(got) == set(expected)
    width = expected["text_tower.transformer.resblocks.0.attn.out_proj.weight"].shape[0]
    for name, value in expected.items():
        if name.endswith("attn.in_proj_bias"):  # the query, key and value biases, stacked
            got_qv, expected_qv = (torch.cat([t[:width], t[2 * width :]]) for t in (got[name], value))
            torch.testing.assert_close(got_qv, expected_qv, rtol=1e-4, atol=1e-5, msg=name)
            continue
        torch.testing.assert_close(got[name], value, rtol=1e-4, atol=1e-5, msg=name)
    teacher = [name for name in expected if name.startswith("teacher.")]
    assert teacher and any(
        not torch.equal(expected[n], expected[n.removeprefix("teacher.")]) for n in teacher
    )


def test_the_checkpoint_is_a_folder_of_torch_dcp_shards(fsdp_dir: Path) -> None:
    folder = fsdp_dir / CHECKPOINT
    assert folder.is_dir()
    assert (folder / ".metadata").is_file() and (folder / "meta.pt").is_file()
    assert len(list(folder.glob("*.distcp"))) == 2  # one shard file per rank


def test_resuming_from_the_sharded_folder_continues_exactly(fsdp: dict[str, dict[str, Any]]) -> None:
    stopped, resumed, straight = fsdp["stopped"], fsdp["resumed"], fsdp["straight"]
    assert sorted(stopped["losses"]) == [1, 2] and sorted(resumed["losses"]) == [3]
    assert resumed["losses"][3] == straight["losses"][3]
    for name, value in straight["state"].items():
        assert torch.equal(resumed["state"][name], value), name


def test_vtp_export_of_the_sharded_folder_writes_the_unsharded_weights(
    fsdp_dir: Path, fsdp: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    assert export_main([str(fsdp_dir / CHECKPOINT), str(tmp_path / "exported")]) == 0
    weights = read_safetensors(tmp_path / "exported" / WEIGHTS_NAME)
    state = fsdp["stopped"]["state"]  # the full state at step 2, gathered when that fit ended
    expected = {k for k in state if k.split(".")[0] in ("encoder", "bottleneck", "decoder")}
    assert set(weights) == expected
    for name in expected:
        assert torch.equal(weights[name], state[name]), name


def test_vtp_export_refuses_a_hostile_sharded_folder_before_unpickling_it(
    fsdp_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder, marker = tmp_path / "hostile.ckpt", tmp_path / "payload-ran"
    shutil.copytree(fsdp_dir / CHECKPOINT, folder)
    (folder / ".metadata").write_bytes(pickle.dumps(ShellPayload(marker)))
    assert export_main([str(folder), str(tmp_path / "exported")]) == 2
    assert not marker.exists()
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: refusing to load sharded checkpoint")
