"""Two "nodes" on this machine: the real CLI, Lightning's own cluster environment, WebDataset shards.

Each node is one process started on its own, as a cluster would start it (``MASTER_ADDR``,
``MASTER_PORT``, ``NODE_RANK``, ``WORLD_SIZE``; ``--trainer.num_nodes 2 --trainer.devices 1``), with 2
DataLoader workers each: 4 consumers over 4 shards of 8 samples, batches of 4, so an epoch is 4 steps.
The first run loses node 1 to a SIGKILL as it starts step 3; both nodes are then resumed from the
step-2 checkpoint and finish 2 epochs. Every batch's sample numbers are recorded
(``multinode_callbacks.SampleKeyRecorder``).
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import tarfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pytest
from gloo_group import free_port
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
AE_CONFIG = REPO / "experiments" / "ae.yaml"
LIGHTNING = Path(sys.executable).parent / "lightning"
SAMPLES, STEPS_PER_EPOCH, EPOCHS = 32, 4, 2
TIMEOUT_S = 240

pytestmark = [pytest.mark.distributed, pytest.mark.integration, pytest.mark.timeout(3 * TIMEOUT_S)]


def grey_png(level: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (20, 16), (level, level, level)).save(buffer, format="PNG")
    return buffer.getvalue()


def write_shards(folder: Path) -> None:
    """4 shards of 8: sample i is a uniform grey image of level i with caption "sample i"."""
    folder.mkdir()
    for s in range(4):
        with tarfile.open(folder / f"train-{s}.tar", "w") as tar:
            for i in range(8 * s, 8 * s + 8):
                for suffix, data in (("png", grey_png(i)), ("txt", f"sample {i}".encode())):
                    info = tarfile.TarInfo(f"s{i:03d}.{suffix}")
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))


def node_command(
    shrunk_args: Callable[..., list[str]],
    shards: Path,
    root: Path,
    keys: Path,
    kill_at: int | None,
    ckpt: Path | None,
) -> list[str]:
    callbacks = [
        {
            "class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
            "init_args": {"every_n_train_steps": 2, "save_top_k": -1, "filename": "{step}"},
        },
        {"class_path": "multinode_callbacks.SampleKeyRecorder", "init_args": {"folder": str(keys)}},
    ]
    if kill_at is not None:
        callbacks.append(
            {"class_path": "multinode_callbacks.KillAtStep", "init_args": {"step": kill_at, "rank": 1}}
        )
    train = {
        "class_path": "vtp_lightning.data.WebDatasetShards",
        "init_args": {
            "urls": str(shards / "train-{0..3}.tar"),
            "samples_per_epoch": SAMPLES,
            "shuffle_buffer": 4,
        },
    }
    args = shrunk_args(AE_CONFIG, root, max_steps=EPOCHS * STEPS_PER_EPOCH)
    args += ["--trainer.num_nodes", "2", "--trainer.devices", "1", "--trainer.strategy", "ddp"]
    args += ["--trainer.limit_val_batches", "0", "--trainer.callbacks", json.dumps(callbacks)]
    args += ["--data.train", json.dumps(train), "--data.batch_size", "4", "--data.num_workers", "2"]
    if ckpt is not None:
        args += ["--ckpt_path", str(ckpt)]
    return [str(LIGHTNING), *args]


def start_nodes(command: list[str], out: Path, name: str) -> list[subprocess.Popen]:
    port = free_port()
    nodes = []
    for node_rank in (0, 1):
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
        env.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), NODE_RANK=str(node_rank), WORLD_SIZE="2")
        env.pop("LOCAL_RANK", None)
        env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(Path(__file__).parent)])
        log = open(out / f"{name}-node{node_rank}.log", "w")  # noqa: SIM115 (closed with the process)
        nodes.append(subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=out))
    return nodes


def wait(node: subprocess.Popen, timeout: float) -> int | None:
    try:
        return node.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        return None


def log_tail(out: Path, name: str) -> str:
    return "\n".join(f"--- {p.name}\n{p.read_text()[-2500:]}" for p in sorted(out.glob(f"{name}-node*.log")))


def records(folder: Path) -> list[dict]:
    return [
        json.loads(line)
        for path in sorted(folder.glob("keys-rank*.jsonl"))
        for line in path.read_text().splitlines()
    ]


@pytest.fixture(scope="module")
def runs(
    tmp_path_factory: pytest.TempPathFactory, shrunk_cli_args: Callable[..., list[str]]
) -> SimpleNamespace:
    """The killed run and its resumption; each node's exit code and every recorded batch."""
    out = tmp_path_factory.mktemp("multinode")
    shards, root = out / "shards", out / "run"
    write_shards(shards)
    command = node_command(shrunk_cli_args, shards, root, out / "keys-first", kill_at=3, ckpt=None)
    first = start_nodes(command, out, "first")
    killed = wait(first[1], TIMEOUT_S)
    survivor = wait(first[0], 30)  # a scheduler tears the job down when a node is lost
    if survivor is None:
        first[0].send_signal(signal.SIGKILL)
        first[0].wait()
    if killed is None:
        first[1].kill()
        pytest.fail(f"node 1 was not killed at step 3:\n{log_tail(out, 'first')}")
    checkpoint = root / "checkpoints" / "step=2.ckpt"
    assert checkpoint.is_file(), log_tail(out, "first")
    command = node_command(shrunk_cli_args, shards, root, out / "keys-resumed", kill_at=None, ckpt=checkpoint)
    second = start_nodes(command, out, "resumed")
    codes = [wait(node, TIMEOUT_S) for node in second]
    for node in second:
        if node.poll() is None:
            node.kill()
    return SimpleNamespace(
        out=out,
        killed=killed,
        resumed_codes=codes,
        first=records(out / "keys-first"),
        resumed=records(out / "keys-resumed"),
    )


def test_node_one_was_killed_and_both_resumed_nodes_exit_0(runs: SimpleNamespace) -> None:
    assert runs.killed == -signal.SIGKILL
    assert runs.resumed_codes == [0, 0], log_tail(runs.out, "resumed")
    assert {r["rank"] for r in runs.resumed} == {0, 1}  # two ranks, one per node
    assert min(r["step"] for r in runs.resumed) == 2  # the resumed run starts where the checkpoint was


def test_a_whole_epoch_of_the_two_node_run_reads_every_sample_exactly_once(runs: SimpleNamespace) -> None:
    epoch1 = Counter(key for r in runs.resumed if r["epoch"] == 1 for key in r["keys"])
    assert epoch1 == Counter(range(SAMPLES))
    assert sorted({r["step"] for r in runs.resumed if r["epoch"] == 1}) == list(range(4, 8))


def test_the_epoch_cut_by_the_kill_still_reads_every_sample_exactly_once(runs: SimpleNamespace) -> None:
    """Steps 0-1 from the killed run (the checkpoint holds them), steps 2-3 from the resumed one."""
    before = [r for r in runs.first if r["step"] < 2]
    after = [r for r in runs.resumed if r["epoch"] == 0]
    assert sorted({r["step"] for r in before}) == [0, 1] and sorted({r["step"] for r in after}) == [2, 3]
    epoch0 = Counter(key for r in before + after for key in r["keys"])
    assert epoch0 == Counter(range(SAMPLES))
