"""``make gpu-check``: what a GPU session of at most ~8 minutes should measure, in one prepared run.

For the S, B and L presets (``experiments/scale/vtp_{s,b,l}.yaml``) on one GPU:

* the largest per-GPU batch that fits (doubling until CUDA runs out of memory), and at it the bf16
  full training step time (the module's own :func:`train_step` under bf16 autocast, as Lightning's
  ``bf16-mixed`` runs it), images/s, peak memory, and model FLOPs utilisation: FLOPs per step
  (``FlopCounterMode``) / step time / the card's dense bf16 peak (:data:`BF16_PEAK_TFLOPS`, by device
  name; ``unknown`` for other cards);
* ``compile_blocks`` on versus off at half that batch;
* DDP versus FSDP peak memory through the real CLI (3 steps each), when ``experiments/presets/fsdp.yaml``
  exists in the checkout (else recorded as not measured);
* the data pipeline's images/s per CPU core (the Tux Paint shards of ``make tuxpaint-shards`` when
  present, else synthetic JPEGs) against each size's GPU demand: the workers a GPU needs;
* one short ``GRID=gpu`` cell (``experiments/presets/gpu.yaml``), with the module's always-on
  ``NonFiniteGuard``.

Writes ``<out>/gpu_check.json`` and ``<out>/gpu_check.md``. Every section stops early when the time
budget (``GPU_CHECK_BUDGET_S``, default 420 s) runs out and says so in its row.

``GPU_CHECK_DRY=1`` runs the same code on the CPU at tiny sizes (batches up to 4, fp32 and bf16 on
CPU, no ``torch.compile``, no grid cell), so a test keeps the script from rotting.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from vtp_lightning.bench.sizes import BenchSize, _from_config, synthetic_batch  # noqa: E402
from vtp_lightning.bench.suite_step import build_suite_model  # noqa: E402
from vtp_lightning.bench.timing import flops_of  # noqa: E402
from vtp_lightning.objectives.training_step import train_step  # noqa: E402

#: dense (no sparsity) bf16 tensor-core peak per GPU, TFLOP/s, from the vendors' data sheets;
#: matched against torch.cuda.get_device_name() in this order (first substring that matches)
BF16_PEAK_TFLOPS: list[tuple[str, float]] = [
    ("GH200", 989.0),
    ("H200", 989.0),
    ("H100 NVL", 835.0),
    ("H100 PCIe", 756.0),
    ("H100", 989.0),  # SXM (the name reads e.g. "NVIDIA H100 80GB HBM3")
    ("H800", 989.0),
    ("A100", 312.0),
    ("A800", 312.0),
    ("L40S", 362.0),
    ("L40", 181.0),
    ("L4", 121.0),
    ("A10G", 70.0),
    ("A10", 125.0),
    ("RTX 4090", 165.0),
    ("RTX 3090", 71.0),
]
PRESETS = {
    "S": "experiments/scale/vtp_s.yaml",
    "B": "experiments/scale/vtp_b.yaml",
    "L": "experiments/scale/vtp_l.yaml",
}
FSDP_PRESET = REPO / "experiments" / "presets" / "fsdp.yaml"
TUXPAINT = REPO / "outputs" / "tuxpaint"
#: model options that make any preset tiny in the dry run
DRY_MODEL = {
    "encoder": "tiny",
    "image_size": 32,
    "patch_size": 4,
    "ssl_num_prototypes": 64,
    "ssl_head_hidden_dim": 32,
    "ssl_head_bottleneck_dim": 16,
    "clip_embed_dim": 16,
    "clip_text_width": 16,
    "clip_text_layers": 1,
    "clip_text_heads": 2,
    "clip_text_context_length": 16,
    "rec_decoder_depth": 1,
    "latent_dim": 8,
}


class Budget:
    """Seconds left of the session's budget."""

    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        return self.end - time.monotonic()


def bf16_peak_tflops(name: str) -> float | None:
    return next((peak for key, peak in BF16_PEAK_TFLOPS if key in name), None)


def sized(size: BenchSize, batch: int, dry: bool) -> BenchSize:
    """``size`` at ``batch`` rows with the preset's share of SSL rows (1/4); reconstruction keeps the
    preset's 32 rows per GPU (the whole batch below that)."""
    if dry:
        size = replace(size, model={**size.model, **DRY_MODEL}, local_size=16, context_length=16)
    return replace(size, batch_size=batch, ssl_rows=max(1, batch // 4))


def on_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {key: value.to(device) for key, value in batch.items()}


class SizeRun:
    """One preset's model and AdamW on the device (built once), stepped in bf16 at any batch."""

    def __init__(self, name: str, device: torch.device, dry: bool, compile_blocks: bool = False) -> None:
        self.base, self.device = sized(_from_config(name, PRESETS[name]), 1, dry), device
        with device:  # parameters are created on the GPU: no CPU init and copy of a large model
            self.model = build_suite_model(self.base, compile_blocks=compile_blocks).to(device)
        self.optimizer = self.model.configure_optimizers()["optimizer"]

    def step_at(self, batch_size: int) -> Any:
        """A callable running one full training step on a fixed synthetic batch of ``batch_size``."""
        size = replace(self.base, batch_size=batch_size, ssl_rows=max(1, batch_size // 4))
        batch = on_device(synthetic_batch(size), self.device)

        def step() -> None:
            with torch.autocast(self.device.type, dtype=torch.bfloat16):
                train_step(self.model, batch, self.optimizer)
            if self.device.type == "cuda":
                torch.cuda.synchronize()

        return step


def release() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def is_oom(exc: BaseException) -> bool:
    return isinstance(exc, torch.cuda.OutOfMemoryError) or "out of memory" in str(exc).lower()


def timed(step: Any, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def peak_memory_gib(device: torch.device) -> float | None:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    return None


def largest_batch(run: SizeRun, dry: bool, budget: Budget, cap: int) -> tuple[int, str]:
    """The largest batch (doubling from 8, or 1 dry) whose step runs, and why the search stopped."""
    batch, best, why = (1 if dry else 8), 0, f"cap {cap}"
    while batch <= cap:
        if budget.left() < 30:
            why = "time budget"
            break
        try:
            run.step_at(batch)()
        except RuntimeError as exc:
            if not is_oom(exc):
                raise
            why = f"out of memory at {batch}"
            release()
            break
        best, batch = batch, batch * 2
        release()
    return best, why


def measure_size(
    name: str, device: torch.device, dry: bool, budget: Budget, peak: float | None
) -> dict[str, Any]:
    """Largest batch, bf16 step time, images/s, MFU and peak memory of one preset."""
    run = SizeRun(name, device, dry)
    batch, why = largest_batch(run, dry, budget, cap=4 if dry else 1024)
    row: dict[str, Any] = {"size": name, "largest_batch": batch, "search_stopped": why}
    while batch > 0:
        try:
            step = run.step_at(batch)
            step()  # warm-up
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            seconds = timed(step, 3)
            flops = flops_of(step)
            break
        except RuntimeError as exc:  # at the edge, fragmentation can fail a step that fitted once
            if not is_oom(exc):
                raise
            release()
            batch //= 2
            row |= {"largest_batch": batch, "search_stopped": f"{why}; timed at half after an OOM"}
    if batch == 0:
        return row | {"note": "no batch fitted"}
    row |= {
        "step_s": seconds,
        "images_per_s": batch / seconds,
        "peak_memory_gib": peak_memory_gib(device),
        "tflop_per_step": flops / 1e12,
        "achieved_tflops": flops / seconds / 1e12,
        "mfu": (flops / seconds / 1e12 / peak) if peak else None,
    }
    del run, step
    release()
    return row


def measure_compile(name: str, batch: int, device: torch.device, dry: bool, budget: Budget) -> dict[str, Any]:
    """Step time with ``compile_blocks`` off and on at ``batch`` (compilation not counted)."""
    row: dict[str, Any] = {"size": name, "batch": batch}
    if dry:
        return row | {"note": "not run in the dry mode (torch.compile on a CPU takes minutes)"}
    if budget.left() < 90 or batch < 1:
        return row | {"note": "not measured: time budget"}
    for label, compiled in (("off", False), ("on", True)):
        run = SizeRun(name, device, dry, compile_blocks=compiled)
        step = run.step_at(batch)
        start = time.perf_counter()
        step()
        step()  # compiles (dynamic shapes settle on the second call)
        row[f"warmup_s_{label}"] = time.perf_counter() - start
        row[f"step_s_{label}"] = timed(step, 3)
        del run, step
        release()
    row["speedup"] = row["step_s_off"] / row["step_s_on"]
    return row


def data_rate_per_core(dry: bool) -> dict[str, Any]:
    """Training images/s one core prepares at the S preset's data settings (one thread, no workers)."""
    from vtp_lightning.bench.data_throughput import _images_per_second, _write_jpegs
    from vtp_lightning.config_files import load_config
    from vtp_lightning.data import VTPDataModule, WebDatasetShards
    from vtp_lightning.data.sources.image_folder import ImageFolder

    data = {k: v for k, v in load_config(REPO / PRESETS["S"])["data"].items() if not isinstance(v, dict)}
    batch, batches = (4, 2) if dry else (32, 4)
    data |= {"batch_size": batch, "ssl_batch_size": batch // 4, "num_workers": 0}
    if dry:
        data |= {"image_size": 32, "patch_size": 4, "local_crop_size": 16, "context_length": 16}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            if (TUXPAINT / "train-000000.tar").is_file():
                what = "Tux Paint shards (256 px PNG)"
                source = WebDatasetShards(str(TUXPAINT / "train-{000000..000007}.tar"), shuffle_buffer=64)
            else:
                what = "synthetic JPEGs (~400 x 350)"
                _write_jpegs(Path(tmp), batch * (batches + 1))
                source = ImageFolder(tmp)
            rate = _images_per_second(VTPDataModule(train=source, val=source, **data), batches)
    finally:
        torch.set_num_threads(threads)
    return {"images_per_s_per_core": rate, "data": what, "batch": batch, "cores_here": os.cpu_count()}


class PeakMemory(pl.Callback):
    """Writes this process's peak memory to ``$GPU_CHECK_MEMORY_FILE`` when fit ends (CLI runs)."""

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        device = pl_module.device
        if device.type == "cuda":
            value, unit = torch.cuda.max_memory_allocated(device) / 2**30, "GiB allocated (CUDA)"
        else:
            value, unit = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, "GiB max RSS (CPU)"
        if trainer.is_global_zero:
            Path(os.environ["GPU_CHECK_MEMORY_FILE"]).write_text(json.dumps({"peak": value, "unit": unit}))


def cli_memory(extra_configs: list[str], batch: int, dry: bool, out: Path, label: str) -> dict[str, Any]:
    """Peak memory of a 3-step CLI fit of the S preset (embedded data upsampled: memory needs shapes only)."""
    memory_file = out / f"memory_{label}.json"
    args = [sys.executable, "-m", "vtp_lightning", "fit", "--config", PRESETS["S"]]
    for config in extra_configs:
        args += ["--config", config]
    args += ["--trainer.devices", "1", "--trainer.max_steps", "3", "--trainer.limit_val_batches", "0"]
    args += [
        "--trainer.default_root_dir",
        str(out / f"fit_{label}"),
        "--trainer.enable_progress_bar",
        "false",
    ]
    args += ["--trainer.callbacks", json.dumps([{"class_path": "gpu_check.PeakMemory"}])]
    args += ["--data.train", "null", "--data.val", "null", "--data.num_workers", "2"]
    args += ["--data.batch_size", str(batch), "--data.ssl_batch_size", str(max(1, batch // 4))]
    args += ["--model.init_args.rec_batch_size", str(max(1, batch // 8))]
    if dry:
        args += [
            "--trainer.accelerator",
            "cpu",
            "--trainer.precision",
            "bf16-mixed",
            "--data.num_workers",
            "0",
        ]
        args += ["--data.image_size", "32", "--data.patch_size", "4", "--data.local_crop_size", "16"]
        args += ["--data.context_length", "16", "--data.num_local_crops", "2"]
        for key, value in DRY_MODEL.items():
            if key not in ("image_size", "patch_size"):
                args += [f"--model.init_args.{key}", str(value)]
    env = {**os.environ, "GPU_CHECK_MEMORY_FILE": str(memory_file)}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "scripts"), str(REPO), env.get("PYTHONPATH", "")])
    started = time.perf_counter()
    done = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
    row: dict[str, Any] = {
        "run": label,
        "batch": batch,
        "rc": done.returncode,
        "wall_s": time.perf_counter() - started,
    }
    if done.returncode != 0 or not memory_file.is_file():
        return row | {"error": (done.stderr or done.stdout)[-600:]}
    return row | json.loads(memory_file.read_text())


def measure_ddp_fsdp(batch: int, dry: bool, out: Path, budget: Budget) -> list[dict[str, Any]]:
    if not FSDP_PRESET.is_file():
        return [{"note": f"not measured: {FSDP_PRESET.relative_to(REPO)} is not in this checkout"}]
    if budget.left() < 120:
        return [{"note": "not measured: time budget"}]
    # one process each: the preset's DDP (world size 1) against FSDP, which on one GPU has no peer to
    # shard with (the difference is its bf16 parameters); sharding's savings need 2+ GPUs
    return [
        cli_memory([], batch, dry, out, "ddp") | {"strategy": "ddp"},
        cli_memory([str(FSDP_PRESET)], batch, dry, out, "fsdp") | {"strategy": "fsdp"},
    ]


def grid_cell(dry: bool, out: Path, budget: Budget) -> dict[str, Any]:
    """One short GRID=gpu cell (ae, 20 steps) through the grid runner."""
    command = [sys.executable, "-m", "vtp_lightning.grid", "run-cell", "ae", "1", "0", "--grid", "gpu-check"]
    command += ["--runs-dir", str(out / "grid"), "--base-steps", "20", "--no-echo"]
    command += ["--extra", "--config", "experiments/presets/gpu.yaml"]
    row: dict[str, Any] = {"command": " ".join(command[1:])}
    if dry:
        return row | {"note": "not run in the dry mode (the GPU preset's evaluations are GPU-sized)"}
    if budget.left() < 60:
        return row | {"note": "not run: time budget"}
    started = time.perf_counter()
    try:
        done = subprocess.run(
            command, cwd=REPO, capture_output=True, text=True, timeout=max(30, budget.left() - 20)
        )
    except subprocess.TimeoutExpired:
        return row | {"note": "stopped at the time budget", "wall_s": time.perf_counter() - started}
    return row | {"rc": done.returncode, "wall_s": time.perf_counter() - started, "tail": done.stdout[-400:]}


def markdown(report: dict[str, Any]) -> str:
    def fmt(value: Any, digits: int = 2) -> str:
        if value is None:
            return "unknown"
        return f"{value:.{digits}f}" if isinstance(value, float) else str(value)

    peak = report["bf16_peak_tflops"]
    lines = [
        f"# gpu-check on {report['device']} ({'DRY RUN on CPU, tiny sizes' if report['dry'] else 'bf16'})",
        "",
        f"bf16 peak: {fmt(peak, 0)} TFLOP/s; wall {report['wall_s']:.0f} s; torch {report['torch']}",
        "",
        "| size | largest batch | search stopped | step s | images/s | peak GiB | TFLOP/step | MFU |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in report["sizes"]:
        mfu = row.get("mfu")
        lines.append(
            f"| {row['size']} | {row['largest_batch']} | {row['search_stopped']} | {fmt(row.get('step_s'), 3)} "
            f"| {fmt(row.get('images_per_s'), 1)} | {fmt(row.get('peak_memory_gib'))} "
            f"| {fmt(row.get('tflop_per_step'), 3)} | {'unknown' if mfu is None else f'{mfu:.1%}'} |"
        )
    lines += [
        "",
        "| compile_blocks | batch | step s off | step s on | speed-up | note |",
        "|---|---|---|---|---|---|",
    ]
    for row in report["compile"]:
        lines.append(
            f"| {row['size']} | {row['batch']} | {fmt(row.get('step_s_off'), 3)} | {fmt(row.get('step_s_on'), 3)} "
            f"| {fmt(row.get('speedup'))} | {row.get('note', '')} |"
        )
    lines += ["", "DDP vs FSDP (S, 3-step CLI fit, one process):", ""]
    for row in report["ddp_vs_fsdp"]:
        lines.append(f"- {json.dumps(row)}")
    data = report["data"]
    lines += [
        "",
        f"Data: {fmt(data['images_per_s_per_core'], 1)} images/s per core ({data['data']}, S settings, batch "
        f"{data['batch']}); this machine has {data['cores_here']} cores.",
        "",
        "| size | GPU images/s | data workers needed |",
        "|---|---|---|",
    ]
    for row in report["sizes"]:
        if row.get("images_per_s"):
            need = math.ceil(row["images_per_s"] / data["images_per_s_per_core"])
            lines.append(f"| {row['size']} | {row['images_per_s']:.1f} | {need} |")
    lines += ["", f"GRID=gpu cell: {json.dumps(report['grid_cell'])}", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "outputs" / "gpu_check")
    parser.add_argument("--sizes", nargs="+", default=["S", "B", "L"], choices=sorted(PRESETS))
    args = parser.parse_args(argv)
    dry = os.environ.get("GPU_CHECK_DRY") == "1"
    budget = Budget(float(os.environ.get("GPU_CHECK_BUDGET_S", 420)))
    started = time.perf_counter()
    if not dry and not torch.cuda.is_available():
        print(
            "error: no CUDA device; run on a GPU machine, or set GPU_CHECK_DRY=1 for the CPU dry run",
            file=sys.stderr,
        )
        return 2
    device = torch.device("cpu" if dry else "cuda")
    name = "cpu (dry run)" if dry else torch.cuda.get_device_name(device)
    peak = None if dry else bf16_peak_tflops(name)
    args.out.mkdir(parents=True, exist_ok=True)
    sizes = [measure_size(size, device, dry, budget, peak) for size in args.sizes]
    compiled = [measure_compile(r["size"], r["largest_batch"] // 2 or 1, device, dry, budget) for r in sizes]
    s_batch = next((r["largest_batch"] for r in sizes if r["size"] == "S"), 8)
    report = {
        "device": name,
        "dry": dry,
        "torch": torch.__version__,
        "bf16_peak_tflops": peak,
        "sizes": sizes,
        "compile": compiled,
        "ddp_vs_fsdp": measure_ddp_fsdp(max(1, s_batch // 2), dry, args.out, budget),
        "data": data_rate_per_core(dry),
        "grid_cell": grid_cell(dry, args.out, budget),
    }
    report["wall_s"] = time.perf_counter() - started
    (args.out / "gpu_check.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / "gpu_check.md").write_text(markdown(report))
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
