# vtp-lightning — run `make` (or `make help`) to list targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.stamp-install
# torch and torchvision are pinned to the builds this machine (and CI) has on local disk.
TORCH_PINS := torch==2.14.1 torchvision==0.29.1
PYTEST_ARGS ?=

help: ## list the targets and what they do
	@grep -hE '^[a-zA-Z0-9_.-]+:.*## ' $(MAKEFILE_LIST) | sort -u | \
		awk 'BEGIN {FS = ":.*## "}; {printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check $(TORCH_PINS)
	$(BIN)/pip install -q --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

install: $(STAMP) ## create .venv with pinned torch and the suite (editable, dev extra); idempotent

demo: install ## set up, then train the full VTP tokenizer (CLIP+SSL+AE) on the embedded data
	$(BIN)/lightning fit --config experiments/clip_ssl_ae.yaml

test: install ## set up, then run the default test suite (slow tests excluded)
	$(BIN)/pytest -m "not slow" $(PYTEST_ARGS)

test-unit: install ## the fast unit layer only (no Trainer fits, no CLI runs, no slow tests)
	$(BIN)/pytest -m "not slow and not integration and not distributed" $(PYTEST_ARGS)

test-slow: install ## run only the slow end-to-end tests
	$(BIN)/pytest -m slow $(PYTEST_ARGS)

test-all: install ## run every test, slow ones included
	$(BIN)/pytest $(PYTEST_ARGS)

lint: install ## ruff check and format check, and mypy over the objectives (the mixin contract)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: install ## ruff format and autofix
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean: ## remove caches and run outputs (keeps .venv)
	rm -rf .pytest_cache .ruff_cache .mypy_cache lightning_logs outputs
	find . -name __pycache__ -prune -exec rm -rf {} +

.PHONY: help install demo test test-unit test-slow test-all lint format clean bench embedded-data

embedded-data: install ## rebuild the embedded Fashion-MNIST slice from Debian's dataset-fashion-mnist
	$(BIN)/python scripts/make_embedded_fashion_mnist.py

feature-net: install ## retrain the embedded fmnist feature extractor and rewrite its shipped weights
	$(BIN)/python scripts/train_fmnist_feature_net.py
include grid.mk

bench: install ## full step vs a reference (VTP_REF=/path/to/VTP: official code; VTP_BENCH_SIZES=demo skips S), data, pieces
	$(BIN)/python -m vtp_lightning.bench

# ---- scale on this machine (issue 21, stream D) ----
TUXPAINT_OUT ?= outputs/tuxpaint
PRECISION ?= bf16-mixed
tuxpaint-shards: install ## 256 px WebDataset shards from Debian's tuxpaint-stamps-default (apt-get download, cached) into $(TUXPAINT_OUT)
	$(BIN)/python scripts/make_tuxpaint_shards.py --out $(TUXPAINT_OUT)

tuxpaint-s: install ## VTP-S on the Tux Paint shards for 24 CPU steps (bf16-mixed; PRECISION=32-true for fp32), then resume 4 steps and export
	$(BIN)/lightning fit --config experiments/scale/tuxpaint_s_cpu.yaml --trainer.precision $(PRECISION) \
		--trainer.default_root_dir outputs/scale/tuxpaint_s_cpu_$(PRECISION)
	$(BIN)/lightning fit --config experiments/scale/tuxpaint_s_cpu.yaml --trainer.precision $(PRECISION) \
		--trainer.default_root_dir outputs/scale/tuxpaint_s_cpu_$(PRECISION) --trainer.max_steps 28 \
		--ckpt_path outputs/scale/tuxpaint_s_cpu_$(PRECISION)/checkpoints/last.ckpt
	$(BIN)/vtp-export outputs/scale/tuxpaint_s_cpu_$(PRECISION)/checkpoints/last.ckpt outputs/scale/tuxpaint_s_cpu_$(PRECISION)/export

gpu-check: install ## one <= 8 min GPU session: S/B/L bf16 step, images/s, MFU, largest batch, compile, DDP vs FSDP, data workers (GPU_CHECK_DRY=1: CPU, tiny)
	$(BIN)/python scripts/gpu_check.py

.PHONY: tuxpaint-shards tuxpaint-s gpu-check
