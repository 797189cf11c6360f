# grid.mk - the objective-ablation grid, included at the end of Makefile (uses its BIN and install).
#
# Every cell is a FILE target, RUNS_DIR/GRID/<combination>/<budget>x/seed<k>/DONE, so make skips
# finished cells by itself, `make -j2 grid` trains two cells at a time, and `make -n grid` lists
# the cells still to run. The runner (python -m vtp_lightning.grid run-cell) also skips DONE cells,
# resumes interrupted ones from checkpoints/last.ckpt and locks each cell while it trains.
# Budgets are written the shortest way (1, 3, 10, 0.5): folder names and targets use that form.
#
#   make grid GRID=pilot BUDGETS="1 3" SEEDS="0 1"    make clip_ssl_ae    make plots GRID=pilot
#
# A cell's seed is its tokenizer seed (seed_everything) *and* its gFD protocol seed, so cells of one
# seed are compared with common random numbers and vtp-report pairs them seed by seed.
#
# Presets (values given on the command line still win):
#   GRID=paper  the paper's comparison on this 2-core CPU machine: AE, CLIP+AE, SSL+AE, CLIP+SSL+AE at
#               budgets 1x and 4x of 25 steps, seeds 0 1 2 (24 cells, ~2 h: see README "Results").
#   GRID=gpu    the same comparison sized for ~10 minutes on one H100/H200 with `make -j4 grid GRID=gpu`:
#               budgets 1x and 4x of 500 steps and a bigger gFD protocol (experiments/presets/gpu.yaml).
#               UNTESTED: it has not run on a GPU yet.

GRID ?= default
PAPER_COMBINATIONS := ae clip_ae ssl_ae clip_ssl_ae
ifeq ($(GRID),paper)
GRID_COMBINATIONS ?= $(PAPER_COMBINATIONS)
BUDGETS ?= 1 4
SEEDS ?= 0 1 2
BASE_STEPS ?= 25
endif
ifeq ($(GRID),gpu)
GRID_COMBINATIONS ?= $(PAPER_COMBINATIONS)
BUDGETS ?= 1 4
SEEDS ?= 0 1 2
BASE_STEPS ?= 500
GRID_EXTRA ?= --config experiments/presets/gpu.yaml
endif
BUDGETS ?= 1 3 10
SEEDS ?= 0
COMBINATIONS := $(shell $(PYTHON) -m vtp_lightning.combinations)  # defined once, in vtp_lightning/combinations.py
# the combinations `make grid` trains (every one unless a preset or the command line narrows it)
GRID_COMBINATIONS ?= $(COMBINATIONS)
RUNS_DIR ?= runs
# steps of a 1x budget; empty = each config's own trainer.max_steps
BASE_STEPS ?=
# extra arguments for every training command, e.g. GRID_EXTRA="--trainer.accelerator cpu"
GRID_EXTRA ?=
TRAIN_COMMAND ?= $(BIN)/lightning fit

# the cell layout of vtp_lightning/grid_layout.py (Cell.directory, DONE), spelled in make
grid_done = $(RUNS_DIR)/$(GRID)/$(1)/$(2)x/seed$(3)/DONE
grid_cells_of = $(foreach b,$(BUDGETS),$(foreach s,$(SEEDS),$(call grid_done,$(1),$(b),$(s))))
GRID_CELLS := $(foreach c,$(GRID_COMBINATIONS),$(call grid_cells_of,$(c)))
GRID_FLAGS = --grid $(GRID) --runs-dir $(RUNS_DIR) --train-command '$(TRAIN_COMMAND)' --no-echo \
	$(if $(BASE_STEPS),--base-steps $(BASE_STEPS)) $(if $(GRID_EXTRA),--extra $(GRID_EXTRA))

# one file rule per cell; `install` is order-only so a phony prerequisite never re-runs a DONE cell
define grid_cell_rule
$(call grid_done,$(1),$(2),$(3)): | install
	$(BIN)/python -m vtp_lightning.grid run-cell $(1) $(2) $(3) $(GRID_FLAGS)
endef

# one phony target per combination: its cells over BUDGETS x SEEDS
define grid_combination_rule
$(1): $(call grid_cells_of,$(1))
endef

$(foreach c,$(COMBINATIONS),$(foreach b,$(BUDGETS),$(foreach s,$(SEEDS),\
	$(eval $(call grid_cell_rule,$(c),$(b),$(s))))))
$(foreach c,$(COMBINATIONS),$(eval $(call grid_combination_rule,$(c))))

grid: $(GRID_CELLS) ## train every cell: GRID_COMBINATIONS x BUDGETS x SEEDS into RUNS_DIR/GRID (-j2 safe; GRID=paper, GRID=gpu presets)

grid-list: install ## print every cell of the grid with its status (done/running/interrupted/failed/pending)
	@$(BIN)/python -m vtp_lightning.grid list --grid $(GRID) --runs-dir $(RUNS_DIR) \
		--combinations $(GRID_COMBINATIONS) --budgets $(BUDGETS) --seeds $(SEEDS)

plots: install ## comparison figures and results.md for RUNS_DIR/GRID (vtp-report), into RUNS_DIR/GRID/report
	$(BIN)/vtp-report $(RUNS_DIR)/$(GRID)

# -- noise floor and DiT-budget curve ----------------------------------------------------------
# `make noise COMBO=ae`: K tokenizer seeds (NOISE_SEEDS) of one cell at BUDGET, each evaluated again
# with every protocol seed in PROTOCOL_SEEDS, then the variance of each metric split into tokenizer
# training and evaluation protocol (vtp_lightning.report.noise) into RUNS_DIR/noise-COMBO/report/results.md.
COMBO ?= ae
NOISE_SEEDS ?= 0 1 2
PROTOCOL_SEEDS ?= 100 101 102
NOISE_BUDGET ?= 4
NOISE_BASE_STEPS ?= 25
NOISE_GRID = noise-$(COMBO)
NOISE_ROWS = $(RUNS_DIR)/$(NOISE_GRID)/protocol_eval.jsonl

noise: install ## noise floor of COMBO: NOISE_SEEDS tokenizers x PROTOCOL_SEEDS evaluations, variance split (ANOVA)
	$(MAKE) grid GRID=$(NOISE_GRID) GRID_COMBINATIONS=$(COMBO) BUDGETS=$(NOISE_BUDGET) \
		SEEDS="$(NOISE_SEEDS)" BASE_STEPS=$(NOISE_BASE_STEPS)
	$(BIN)/python -m vtp_lightning.protocol_eval --config experiments/$(COMBO).yaml --seeds $(PROTOCOL_SEEDS) \
		--out $(NOISE_ROWS) \
		$(foreach s,$(NOISE_SEEDS),$(RUNS_DIR)/$(NOISE_GRID)/$(COMBO)/$(NOISE_BUDGET)x/seed$(s)/checkpoints/last.ckpt)
	$(BIN)/python -m vtp_lightning.report.noise $(RUNS_DIR)/$(NOISE_GRID) --protocol-rows $(NOISE_ROWS)

# `make dit-budget`: AE and CLIP+SSL+AE tokenizers (seed 0, DIT_BUDGET_AT x BASE) scored at every DiT
# budget in DIT_STEPS (one DiT run per protocol seed, snapshots along it) -> docs/results/dit_budget_curve.*
DIT_STEPS ?= 200 400 600 1000
DIT_BUDGET_AT ?= 4
DIT_BUDGET_BASE_STEPS ?= 25
DIT_BUDGET_GRID = dit-budget
DIT_BUDGET_ROWS = $(RUNS_DIR)/$(DIT_BUDGET_GRID)/protocol_eval.jsonl
DIT_BUDGET_OUT ?= docs/results

dit-budget: install ## gFD and class agreement vs DiT training steps for AE and CLIP+SSL+AE (PROTOCOL_SEEDS)
	$(MAKE) grid GRID=$(DIT_BUDGET_GRID) GRID_COMBINATIONS="ae clip_ssl_ae" BUDGETS=$(DIT_BUDGET_AT) \
		SEEDS=0 BASE_STEPS=$(DIT_BUDGET_BASE_STEPS)
	$(BIN)/python -m vtp_lightning.protocol_eval --config experiments/ae.yaml --seeds $(PROTOCOL_SEEDS) \
		--dit-steps $(DIT_STEPS) --out $(DIT_BUDGET_ROWS) \
		$(foreach c,ae clip_ssl_ae,$(RUNS_DIR)/$(DIT_BUDGET_GRID)/$(c)/$(DIT_BUDGET_AT)x/seed0/checkpoints/last.ckpt)
	$(BIN)/python -m vtp_lightning.report.dit_budget $(DIT_BUDGET_ROWS) --out $(DIT_BUDGET_OUT)

# -- scaling curve (issue 24) -------------------------------------------------------------------
# `make scaling-curve`: AE-only and CLIP+SSL+AE at 1x/4x/16x of 25 steps, seeds 0 1 2 (+ 64x for seed 0
# if it fits) in SCALING_RUNS_DIR/paper. It restores the archived paper cells (1x/4x, not retrained;
# SCALING_RESTORE=no trains them too), prints the quiet 2-core estimate of the new compute (measured
# from finished cells' records) and refuses above SCALING_BUDGET_HOURS unless SCALING_GO_ON=1; then
# retrains one archived 1x cell per combination and refuses unless today's code logs the same
# training losses (SCALING_SKIP_REUSE_CHECK=1 skips it); then trains one cell at a time, adds a
# second protocol draw (seed + 100) per cell with a checkpoint, archives the cells to SCALING_ARCHIVE
# and draws SCALING_OUT/scaling_curve.{md,png}. Run it on a quiet machine, after the model's maths settle.
SCALING_RUNS_DIR ?= $(RUNS_DIR)/scaling
SCALING_ARCHIVE ?= docs/results/grids/scaling
SCALING_OUT ?= docs/results
SCALING_BUDGET_HOURS ?= 3
SCALING_GO_ON ?=
SCALING_RESTORE ?= yes
SCALING_SKIP_REUSE_CHECK ?=
SCALING_REUSE_TOLERANCE ?= 1e-4
SCALING_FLAGS = --runs-dir $(SCALING_RUNS_DIR) --grid paper --cost-from docs/results/grids/paper \
	--budget-hours $(SCALING_BUDGET_HOURS) $(if $(SCALING_GO_ON),--go-on) \
	--reuse-tolerance $(SCALING_REUSE_TOLERANCE) $(if $(SCALING_SKIP_REUSE_CHECK),--skip-reuse-check)
SCALING_RESTORE_ARCHIVED = $(if $(filter yes,$(SCALING_RESTORE)),$(BIN)/python scripts/grid_results.py restore paper \
	--runs-dir $(SCALING_RUNS_DIR),@echo "SCALING_RESTORE=$(SCALING_RESTORE): archived cells not restored")

scaling-estimate: install ## print the scaling curve's quiet-machine estimate; trains nothing
	$(SCALING_RESTORE_ARCHIVED)
	$(BIN)/python -m vtp_lightning.scaling_run $(SCALING_FLAGS) --estimate-only

scaling-curve: install ## issue 24's runs (~1.9 h quiet; refuses over SCALING_BUDGET_HOURS), archive, then the curve
	$(SCALING_RESTORE_ARCHIVED)
	$(BIN)/python -m vtp_lightning.scaling_run $(SCALING_FLAGS)
	$(BIN)/python scripts/grid_results.py archive paper --runs-dir $(SCALING_RUNS_DIR) --archive-dir $(SCALING_ARCHIVE)
	$(BIN)/vtp-report $(SCALING_RUNS_DIR)/paper --scaling-curve --out $(SCALING_OUT) --archive-dir $(SCALING_ARCHIVE)

scaling-curve-plots: install ## redraw the scaling curve from the archived cells (SCALING_ARCHIVE), no training
	$(BIN)/python scripts/grid_results.py restore paper --runs-dir $(SCALING_RUNS_DIR) --archive-dir $(SCALING_ARCHIVE)
	$(BIN)/vtp-report $(SCALING_RUNS_DIR)/paper --scaling-curve --out $(SCALING_OUT) --archive-dir $(SCALING_ARCHIVE)

# the per-combination targets are generated, so `make help` cannot grep them: list them here
help: grid-targets
grid-targets: ## list the per-combination grid targets (make ae, make clip_ssl_ae, ...)
	@printf '  \033[36m%-16s\033[0m %s\n' $(foreach c,$(COMBINATIONS),'$(c)' 'train the $(c) cells: BUDGETS x SEEDS')

.PHONY: grid grid-list plots grid-targets noise dit-budget scaling-estimate scaling-curve scaling-curve-plots $(COMBINATIONS)
